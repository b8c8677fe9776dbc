//! The repository directory: reading its current metadata, signing and publishing new versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use rampart_update::keys::SigningKey;
use rampart_update::metadata::{
    Common, Envelope, Key, MetaFile, RoleKeys, Root, Snapshot, Targets, Timestamp,
};
use rampart_update::{digest, layout, sign, Role, UtcTime};
use serde::de::DeserializeOwned;

use crate::files::write_atomic;
use crate::KeyDir;

const DAY: u64 = 86_400;

/// How long each role's metadata stays valid from signing.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub root: Duration,
    pub targets: Duration,
    pub snapshot: Duration,
    pub timestamp: Duration,
}

impl Default for Expiry {
    /// Root a year (re-signed offline at least yearly), targets and snapshot a quarter (a release at least
    /// that often, or a re-sign), timestamp a week (refreshed daily by a timer: a week of slack for outages).
    fn default() -> Expiry {
        Expiry {
            root: Duration::from_secs(365 * DAY),
            targets: Duration::from_secs(90 * DAY),
            snapshot: Duration::from_secs(90 * DAY),
            timestamp: Duration::from_secs(7 * DAY),
        }
    }
}

/// Thresholds per role for a new root; `None` keeps the current one (or 1 for a new repository).
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub root: Option<u32>,
    pub targets: Option<u32>,
    pub snapshot: Option<u32>,
    pub timestamp: Option<u32>,
}

impl Thresholds {
    fn get(&self, role: Role) -> Option<u32> {
        match role {
            Role::Root => self.root,
            Role::Targets => self.targets,
            Role::Snapshot => self.snapshot,
            Role::Timestamp => self.timestamp,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub fn new(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_owned(),
        }
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join(layout::METADATA_DIR)
    }

    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join(layout::TARGETS_DIR)
    }

    fn read<T: DeserializeOwned>(&self, name: &str) -> Result<Option<Envelope<T>>> {
        let path = self.metadata_dir().join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not valid metadata", path.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn root(&self) -> Result<Root> {
        Ok(self
            .read::<Root>(layout::ROOT)?
            .with_context(|| {
                format!(
                    "{} has no metadata/root.json: run `rampart-release init` first",
                    self.dir.display()
                )
            })?
            .signed)
    }

    pub fn targets(&self) -> Result<Option<Targets>> {
        Ok(self.read::<Targets>(layout::TARGETS)?.map(|e| e.signed))
    }

    fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.metadata_dir().join(name), bytes)
    }

    /// Creates `metadata/1.root.json` from the public keys in `keys` (every role needs at least one), signed by
    /// the root secret keys present.
    pub fn init(&self, keys: &KeyDir, thresholds: Thresholds, expiry: Expiry) -> Result<()> {
        if self
            .metadata_dir()
            .join(layout::versioned(1, layout::ROOT))
            .exists()
        {
            bail!(
                "{} already has a root; use rotate-root to change keys",
                self.dir.display()
            );
        }
        std::fs::create_dir_all(self.metadata_dir())
            .with_context(|| format!("cannot create {}", self.metadata_dir().display()))?;
        std::fs::create_dir_all(self.targets_dir())
            .with_context(|| format!("cannot create {}", self.targets_dir().display()))?;
        let root = new_root(1, None, keys, thresholds, expiry)?;
        let bytes = signed_file(Role::Root, &root, &signers(Role::Root, &root, &[keys])?)?;
        self.write_meta(&layout::versioned(1, layout::ROOT), &bytes)?;
        self.write_meta(layout::ROOT, &bytes)
    }

    /// Publishes `targets` (its version and expiry are set here) with a new snapshot and timestamp.
    pub fn publish(&self, mut targets: Targets, keys: &[&KeyDir], expiry: Expiry) -> Result<()> {
        let root = self.root()?;
        let now = SystemTime::now();
        let targets_version = self.targets()?.map_or(0, |t| t.common.version) + 1;
        targets.common = Common::new(
            Role::Targets,
            targets_version,
            UtcTime::new(now + expiry.targets),
        );
        let targets_bytes = signed_file(
            Role::Targets,
            &targets,
            &signers(Role::Targets, &root, keys)?,
        )?;

        let snapshot_version = self
            .read::<Snapshot>(layout::SNAPSHOT)?
            .map_or(0, |s| s.signed.common.version)
            + 1;
        let snapshot = Snapshot {
            common: Common::new(
                Role::Snapshot,
                snapshot_version,
                UtcTime::new(now + expiry.snapshot),
            ),
            meta: BTreeMap::from([(
                layout::TARGETS.to_owned(),
                meta_file(targets_version, &targets_bytes),
            )]),
        };
        let snapshot_bytes = signed_file(
            Role::Snapshot,
            &snapshot,
            &signers(Role::Snapshot, &root, keys)?,
        )?;
        let timestamp_bytes =
            self.timestamp_for(&root, snapshot_version, &snapshot_bytes, keys, expiry)?;

        self.write_meta(
            &layout::versioned(targets_version, layout::TARGETS),
            &targets_bytes,
        )?;
        self.write_meta(layout::TARGETS, &targets_bytes)?;
        self.write_meta(
            &layout::versioned(snapshot_version, layout::SNAPSHOT),
            &snapshot_bytes,
        )?;
        self.write_meta(layout::SNAPSHOT, &snapshot_bytes)?;
        self.write_meta(layout::TIMESTAMP, &timestamp_bytes)
    }

    /// A new timestamp for the current snapshot: the only thing the online timestamp key signs.
    pub fn refresh_timestamp(&self, keys: &[&KeyDir], expiry: Expiry) -> Result<()> {
        let root = self.root()?;
        let path = self.metadata_dir().join(layout::SNAPSHOT);
        let snapshot_bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (run `rampart-release build` first)",
                path.display()
            )
        })?;
        let snapshot: Envelope<Snapshot> = serde_json::from_slice(&snapshot_bytes)
            .with_context(|| format!("{} is not valid metadata", path.display()))?;
        let bytes = self.timestamp_for(
            &root,
            snapshot.signed.common.version,
            &snapshot_bytes,
            keys,
            expiry,
        )?;
        self.write_meta(layout::TIMESTAMP, &bytes)
    }

    fn timestamp_for(
        &self,
        root: &Root,
        snapshot_version: u64,
        snapshot_bytes: &[u8],
        keys: &[&KeyDir],
        expiry: Expiry,
    ) -> Result<Vec<u8>> {
        let version = self
            .read::<Timestamp>(layout::TIMESTAMP)?
            .map_or(0, |t| t.signed.common.version)
            + 1;
        let timestamp = Timestamp {
            common: Common::new(
                Role::Timestamp,
                version,
                UtcTime::new(SystemTime::now() + expiry.timestamp),
            ),
            meta: BTreeMap::from([(
                layout::SNAPSHOT.to_owned(),
                meta_file(snapshot_version, snapshot_bytes),
            )]),
        };
        signed_file(
            Role::Timestamp,
            &timestamp,
            &signers(Role::Timestamp, root, keys)?,
        )
    }

    /// Root N+1 with the keys in `new` (roles without keys there keep theirs), signed by a threshold of root N's
    /// keys (from `old`) and of its own (from `new`); then the other roles are re-signed under it (their keys
    /// may have changed), versions up by one.
    pub fn rotate_root(
        &self,
        old: &KeyDir,
        new: &KeyDir,
        thresholds: Thresholds,
        expiry: Expiry,
    ) -> Result<u64> {
        let current = self.root()?;
        let version = current.common.version + 1;
        let root = new_root(version, Some(&current), new, thresholds, expiry)?;
        let mut keys = signers(Role::Root, &current, &[old])
            .context("the new root needs a threshold of the current root keys (--old-keys)")?;
        let new_signers = signers(Role::Root, &root, &[new, old])
            .context("the new root needs a threshold of its own root keys")?;
        for k in new_signers {
            if !keys.iter().any(|have| have.key_id() == k.key_id()) {
                keys.push(k);
            }
        }
        let bytes = signed_file(Role::Root, &root, &keys)?;
        let targets = self.targets()?;
        self.write_meta(&layout::versioned(version, layout::ROOT), &bytes)?;
        self.write_meta(layout::ROOT, &bytes)?;
        if let Some(targets) = targets {
            self.publish(targets, &[new, old], expiry)?;
        }
        Ok(version)
    }
}

fn meta_file(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(digest::hashes(bytes)),
    }
}

fn new_root(
    version: u64,
    current: Option<&Root>,
    keys: &KeyDir,
    thresholds: Thresholds,
    expiry: Expiry,
) -> Result<Root> {
    let mut entries: BTreeMap<String, Key> = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let public = keys.public(role);
        let (keyids, old_threshold) = if !public.is_empty() {
            let mut ids = Vec::new();
            for key in public {
                entries.insert(key.key_id(), key.root_entry()?);
                ids.push(key.key_id());
            }
            (
                ids,
                current
                    .and_then(|r| r.roles.get(role.as_str()))
                    .map(|r| r.threshold),
            )
        } else if let Some(old) = current.and_then(|r| r.roles.get(role.as_str())) {
            for id in &old.keyids {
                if let Some(entry) = current.and_then(|r| r.keys.get(id)) {
                    entries.insert(id.clone(), entry.clone());
                }
            }
            (old.keyids.clone(), Some(old.threshold))
        } else {
            bail!("{} has no {role}-*.cert.asc: every role needs a key (rampart-release keygen --role {role})", keys.path.display());
        };
        let threshold = thresholds.get(role).or(old_threshold).unwrap_or(1);
        if threshold == 0 || threshold as usize > keyids.len() {
            bail!(
                "{role} threshold {threshold} with {} keys: need 1 <= threshold <= keys",
                keyids.len()
            );
        }
        roles.insert(role.as_str().to_owned(), RoleKeys { keyids, threshold });
    }
    Ok(Root {
        common: Common::new(
            Role::Root,
            version,
            UtcTime::new(SystemTime::now() + expiry.root),
        ),
        consistent_snapshot: true,
        keys: entries,
        roles,
    })
}

/// The secret keys in `dirs` listed for `role` in `root`, at least its threshold of them.
fn signers(role: Role, root: &Root, dirs: &[&KeyDir]) -> Result<Vec<SigningKey>> {
    let listed = root
        .roles
        .get(role.as_str())
        .with_context(|| format!("root has no {role} role"))?;
    let mut found: Vec<SigningKey> = Vec::new();
    for dir in dirs {
        for key in dir.secret(role) {
            if listed.keyids.contains(&key.key_id())
                && !found.iter().any(|k| k.key_id() == key.key_id())
            {
                found.push(key.clone());
            }
        }
    }
    if found.len() < listed.threshold as usize {
        let where_: Vec<String> = dirs.iter().map(|d| d.path.display().to_string()).collect();
        bail!(
            "{role} metadata needs {} of the secret keys {:?}; found {} in {}",
            listed.threshold,
            listed.keyids,
            found.len(),
            where_.join(", ")
        );
    }
    Ok(found)
}

fn signed_file<T: serde::Serialize + Clone>(
    role: Role,
    value: &T,
    keys: &[SigningKey],
) -> Result<Vec<u8>> {
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let envelope = sign::envelope(role, value, &refs, SystemTime::now())?;
    Ok(sign::to_file(&envelope)?)
}
