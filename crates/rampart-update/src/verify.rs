//! The client's trusted state, updated in TUF's order (specification §5): the root chain one version at a time,
//! then timestamp, snapshot and targets, each refused with its own [`Error`] variant.
//!
//! The caller (the device daemon) owns persistence: it stores the newest trusted root file, the
//! [`KnownVersions`] and the trusted-time floor, and passes them back next time. Time is never read here: the
//! caller passes `floor = max(persisted floor, RTC)`, and [`Trusted::floor`] returns it raised to the newest
//! verified signature's creation time, so a machine whose clock was set back still sees expired metadata as
//! expired. Rejected: reading the system clock inside (untestable, and an RTC reset would reopen freeze attacks).

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::digest;
use crate::keys::Keyring;
use crate::metadata::{Common, Envelope, MetaFile, RoleKeys, Root, Snapshot, Targets, Timestamp};
use crate::release::Release;
use crate::role::Role;
use crate::signature::verify_threshold;
use crate::target_path;
use crate::utc::UtcTime;
use crate::{layout, Error};

/// Size caps: a file bigger than its cap is refused before any parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
}

impl Default for Limits {
    /// Generous for what we write (a root with a dozen Ed25519 certificates is ~20 KiB, a timestamp ~1 KiB),
    /// small enough that a hostile mirror cannot make a device parse megabytes.
    fn default() -> Limits {
        Limits {
            root: 512 * 1024,
            timestamp: 16 * 1024,
            snapshot: 64 * 1024,
            targets: 1024 * 1024,
        }
    }
}

/// The newest versions the device has trusted; any older one is a rollback. Persist after every update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownVersions {
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
}

#[derive(Debug)]
pub struct Trusted {
    root: Root,
    keyring: Keyring,
    limits: Limits,
    floor: SystemTime,
    known: KnownVersions,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
}

impl Trusted {
    /// Starts from the root the device trusts (shipped in the image or stored after the last update). It must
    /// carry a threshold of its own root keys' signatures; its expiry is checked only once the chain is walked
    /// (an expired root can still certify its successor).
    pub fn new(
        root: &[u8],
        floor: SystemTime,
        known: KnownVersions,
        limits: Limits,
    ) -> Result<Trusted, Error> {
        let parsed = parse(Role::Root, "trusted root.json", root, limits.root)?;
        let root: Root = typed("trusted root.json", parsed.signed.clone())?;
        check_common(Role::Root, &root.common)?;
        let keyring = validate_root(&root)?;
        let signed_at = verify_threshold(
            Role::Root,
            Role::Root,
            &parsed.canonical,
            &parsed.signatures,
            role_keys(&root, Role::Root)?,
            &keyring,
        )?;
        Ok(Trusted {
            root,
            keyring,
            limits,
            floor: floor.max(signed_at),
            known,
            timestamp: None,
            snapshot: None,
            targets: None,
        })
    }

    /// Accepts root version N+1: signed by a threshold of root N's root keys *and* of its own.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.timestamp.is_some() {
            return Err(Error::Order {
                step: "a root update",
                needs: "to come before the timestamp",
            });
        }
        let trusted = self.root.common.version;
        let what = layout::versioned(trusted + 1, layout::ROOT);
        let parsed = parse(Role::Root, &what, bytes, self.limits.root)?;
        let old_time = verify_threshold(
            Role::Root,
            Role::Root,
            &parsed.canonical,
            &parsed.signatures,
            role_keys(&self.root, Role::Root)?,
            &self.keyring,
        )?;
        let new: Root = typed(&what, parsed.signed.clone())?;
        check_common(Role::Root, &new.common)?;
        let found = new.common.version;
        if found <= trusted {
            return Err(Error::Rollback {
                role: Role::Root,
                trusted,
                new: found,
            });
        }
        if found != trusted + 1 {
            return Err(Error::RootVersion { trusted, found });
        }
        let keyring = validate_root(&new)?;
        let new_time = verify_threshold(
            Role::Root,
            Role::Root,
            &parsed.canonical,
            &parsed.signatures,
            role_keys(&new, Role::Root)?,
            &keyring,
        )?;
        // TUF §5.3.11: new timestamp or snapshot keys mean the old versions may have been pushed up by a
        // compromised key (fast-forward); forget them so the new keys can recover.
        let rotated = |role| {
            role_keys(&self.root, role).ok().map(sorted) != role_keys(&new, role).ok().map(sorted)
        };
        if rotated(Role::Timestamp) || rotated(Role::Snapshot) {
            self.known.timestamp = 0;
            self.known.snapshot = 0;
        }
        self.floor = self.floor.max(old_time).max(new_time);
        self.root = new;
        self.keyring = keyring;
        Ok(())
    }

    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<(), Error> {
        // The root chain is complete now: the newest root must be current.
        self.check_expiry(Role::Root, &self.root.common)?;
        let parsed = parse(
            Role::Timestamp,
            layout::TIMESTAMP,
            bytes,
            self.limits.timestamp,
        )?;
        let time = self.verify(Role::Timestamp, &parsed)?;
        let new: Timestamp = typed(layout::TIMESTAMP, parsed.signed)?;
        check_common(Role::Timestamp, &new.common)?;
        check_rollback(Role::Timestamp, self.known.timestamp, new.common.version)?;
        let meta = only_entry(Role::Timestamp, &new.meta, layout::SNAPSHOT)?;
        if meta.length.is_none() || meta.hashes.is_none() {
            return Err(Error::MissingMeta {
                role: Role::Timestamp,
                entry: layout::SNAPSHOT,
                field: "length and hashes",
            });
        }
        check_rollback(Role::Snapshot, self.known.snapshot, meta.version)?;
        self.floor = self.floor.max(time);
        self.check_expiry(Role::Timestamp, &new.common)?;
        self.known.timestamp = new.common.version;
        self.timestamp = Some(new);
        Ok(())
    }

    pub fn update_snapshot(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let Some(timestamp) = &self.timestamp else {
            return Err(Error::Order {
                step: "the snapshot",
                needs: "the timestamp",
            });
        };
        let meta = only_entry(Role::Timestamp, &timestamp.meta, layout::SNAPSHOT)?.clone();
        let cap = self.limits.snapshot.min(meta.length.unwrap_or(u64::MAX));
        // Length and digests first: they are cheaper than a signature and pin the exact bytes.
        check_meta_file(Role::Timestamp, layout::SNAPSHOT, &meta, bytes, cap)?;
        let parsed = parse(
            Role::Snapshot,
            layout::SNAPSHOT,
            bytes,
            self.limits.snapshot,
        )?;
        let time = self.verify(Role::Snapshot, &parsed)?;
        let new: Snapshot = typed(layout::SNAPSHOT, parsed.signed)?;
        check_common(Role::Snapshot, &new.common)?;
        check_rollback(Role::Snapshot, self.known.snapshot, new.common.version)?;
        if new.common.version != meta.version {
            return Err(mix(
                Role::Timestamp,
                layout::SNAPSHOT,
                "version",
                meta.version,
                new.common.version,
            ));
        }
        let targets = only_entry(Role::Snapshot, &new.meta, layout::TARGETS)?;
        check_rollback(Role::Targets, self.known.targets, targets.version)?;
        self.floor = self.floor.max(time);
        self.check_expiry(Role::Snapshot, &new.common)?;
        self.known.snapshot = new.common.version;
        self.snapshot = Some(new);
        Ok(())
    }

    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let Some(snapshot) = &self.snapshot else {
            return Err(Error::Order {
                step: "the targets",
                needs: "the snapshot",
            });
        };
        let meta = only_entry(Role::Snapshot, &snapshot.meta, layout::TARGETS)?.clone();
        check_meta_file(
            Role::Snapshot,
            layout::TARGETS,
            &meta,
            bytes,
            self.limits.targets,
        )?;
        let parsed = parse(Role::Targets, layout::TARGETS, bytes, self.limits.targets)?;
        let time = self.verify(Role::Targets, &parsed)?;
        let new: Targets = typed(layout::TARGETS, parsed.signed)?;
        check_common(Role::Targets, &new.common)?;
        check_rollback(Role::Targets, self.known.targets, new.common.version)?;
        if new.common.version != meta.version {
            return Err(mix(
                Role::Snapshot,
                layout::TARGETS,
                "version",
                meta.version,
                new.common.version,
            ));
        }
        for name in new.targets.keys() {
            target_path::check(name)?;
        }
        Release::from_targets(&new)?;
        self.floor = self.floor.max(time);
        self.check_expiry(Role::Targets, &new.common)?;
        self.known.targets = new.common.version;
        self.targets = Some(new);
        Ok(())
    }

    /// The verified release (after [`Trusted::update_targets`]).
    pub fn release(&self) -> Result<Release<'_>, Error> {
        match &self.targets {
            Some(targets) => Release::from_targets(targets),
            None => Err(Error::Order {
                step: "the release",
                needs: "the targets",
            }),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The snapshot version the verified timestamp names (the file to fetch next).
    pub fn snapshot_version(&self) -> Option<u64> {
        let meta = self.timestamp.as_ref()?.meta.get(layout::SNAPSHOT)?;
        Some(meta.version)
    }

    /// The targets version the verified snapshot names.
    pub fn targets_version(&self) -> Option<u64> {
        let meta = self.snapshot.as_ref()?.meta.get(layout::TARGETS)?;
        Some(meta.version)
    }

    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    /// The trusted-time floor to persist: never lower than what was passed in.
    pub fn floor(&self) -> SystemTime {
        self.floor
    }

    /// The versions to persist (after a root rotation of timestamp/snapshot keys, those are reset).
    pub fn known_versions(&self) -> KnownVersions {
        self.known
    }

    fn verify(&self, role: Role, parsed: &Parsed) -> Result<SystemTime, Error> {
        verify_threshold(
            role,
            role,
            &parsed.canonical,
            &parsed.signatures,
            role_keys(&self.root, role)?,
            &self.keyring,
        )
    }

    fn check_expiry(&self, role: Role, common: &Common) -> Result<(), Error> {
        if common.expires.system_time() <= self.floor {
            return Err(Error::Expired {
                role,
                expires: common.expires.to_string(),
                now: UtcTime::new(self.floor).to_string(),
            });
        }
        Ok(())
    }
}

/// A metadata file split into what the signatures cover and the signatures.
struct Parsed {
    signed: serde_json::Value,
    canonical: Vec<u8>,
    signatures: Vec<crate::metadata::SignatureEntry>,
}

fn parse(role: Role, what: &str, bytes: &[u8], cap: u64) -> Result<Parsed, Error> {
    let len = bytes.len() as u64;
    if len > cap {
        return Err(Error::TooLarge {
            what: what.to_owned(),
            len,
            cap,
        });
    }
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: what.to_owned(),
            source,
        })?;
    let found = envelope
        .signed
        .get("_type")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    if found != role.as_str() {
        return Err(Error::WrongType {
            what: what.to_owned(),
            expected: role,
            found: found.to_owned(),
        });
    }
    let canonical = canonical::to_vec(&envelope.signed).map_err(|source| Error::Json {
        what: what.to_owned(),
        source,
    })?;
    Ok(Parsed {
        signed: envelope.signed,
        canonical,
        signatures: envelope.signatures,
    })
}

fn typed<T: DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|source| Error::Json {
        what: what.to_owned(),
        source,
    })
}

fn check_common(role: Role, common: &Common) -> Result<(), Error> {
    if !common.spec_version.starts_with("1.") {
        return Err(Error::SpecVersion {
            role,
            found: common.spec_version.clone(),
        });
    }
    if common.version == 0 {
        return Err(Error::ZeroVersion { role });
    }
    Ok(())
}

fn check_rollback(role: Role, trusted: u64, new: u64) -> Result<(), Error> {
    if new < trusted {
        return Err(Error::Rollback { role, trusted, new });
    }
    Ok(())
}

/// The role table of a root, checked: exactly the four roles, each with 1 <= threshold <= distinct listed keys,
/// every key present. Returns the parsed certificates.
pub(crate) fn validate_root(root: &Root) -> Result<Keyring, Error> {
    let keyring = Keyring::from_root(root)?;
    for name in root.roles.keys() {
        if Role::from_name(name).is_none() {
            return Err(Error::UnknownRole { name: name.clone() });
        }
    }
    for role in Role::ALL {
        let keys = role_keys(root, role)?;
        let mut seen = std::collections::BTreeSet::new();
        for keyid in &keys.keyids {
            if !seen.insert(keyid) {
                return Err(Error::DuplicateKeyId {
                    role,
                    keyid: keyid.clone(),
                });
            }
            if keyring.get(keyid).is_none() {
                return Err(Error::UnknownKeyId {
                    role,
                    keyid: keyid.clone(),
                });
            }
        }
        if keys.threshold == 0 || keys.threshold as usize > seen.len() {
            return Err(Error::BadThreshold {
                role,
                threshold: keys.threshold,
                keys: seen.len(),
            });
        }
    }
    Ok(keyring)
}

fn role_keys(root: &Root, role: Role) -> Result<&RoleKeys, Error> {
    root.roles
        .get(role.as_str())
        .ok_or(Error::RoleMissing { role })
}

fn sorted(keys: &RoleKeys) -> (Vec<String>, u32) {
    let mut ids = keys.keyids.clone();
    ids.sort();
    (ids, keys.threshold)
}

/// The one entry a timestamp (snapshot.json) or snapshot (targets.json) may describe.
fn only_entry<'m>(
    role: Role,
    meta: &'m std::collections::BTreeMap<String, MetaFile>,
    entry: &'static str,
) -> Result<&'m MetaFile, Error> {
    match meta.get(entry) {
        Some(m) if meta.len() == 1 => Ok(m),
        _ => Err(Error::MissingMeta {
            role,
            entry,
            field: "entry (and only that one)",
        }),
    }
}

/// Length and digests of a metadata file against what the role above says about it.
fn check_meta_file(
    role: Role,
    entry: &'static str,
    meta: &MetaFile,
    bytes: &[u8],
    cap: u64,
) -> Result<(), Error> {
    let len = bytes.len() as u64;
    if let Some(expected) = meta.length {
        if len != expected {
            return Err(mix(role, entry, "length", expected, len));
        }
    }
    if len > cap {
        return Err(Error::TooLarge {
            what: entry.to_owned(),
            len,
            cap,
        });
    }
    if let Some(expected) = &meta.hashes {
        let found = digest::hashes(bytes);
        for (algorithm, e, f) in [
            ("sha256", &expected.sha256, &found.sha256),
            ("sha512", &expected.sha512, &found.sha512),
        ] {
            if e != f {
                return Err(Error::MixAndMatch {
                    role,
                    entry,
                    field: algorithm,
                    expected: e.clone(),
                    found: f.clone(),
                });
            }
        }
    }
    Ok(())
}

fn mix(role: Role, entry: &'static str, field: &'static str, expected: u64, found: u64) -> Error {
    Error::MixAndMatch {
        role,
        entry,
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

#[cfg(test)]
mod tests;
