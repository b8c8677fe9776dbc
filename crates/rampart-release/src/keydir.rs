//! A directory of role keys, as `keygen` writes them:
//!
//! ```text
//! <role>-<name>.cert.asc   public certificate (goes into root.json; give it to anyone)
//! <role>-<name>.key.asc    secret key, mode 0600 (root keys: only on the offline machine)
//! <role>-<name>.rev.asc    revocation certificate, mode 0600 (store apart from the key)
//! ```
//!
//! The role is in the file name so one directory can hold a whole test setup, and an online signing host can
//! hold only `timestamp-*.key.asc`. Secret keys are refused if other users can read them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use rampart_update::keys::{self, PublicKey, SigningKey};
use rampart_update::Role;

use crate::files;

#[derive(Debug, Default)]
pub struct KeyDir {
    pub path: PathBuf,
    pub public: BTreeMap<Role, Vec<PublicKey>>,
    pub secret: BTreeMap<Role, Vec<SigningKey>>,
}

impl KeyDir {
    pub fn load(dir: &Path) -> Result<KeyDir> {
        let mut keys = KeyDir {
            path: dir.to_owned(),
            ..KeyDir::default()
        };
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read key directory {}", dir.display()))?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((role, _)) = name.split_once('-') else {
                continue;
            };
            let Some(role) = Role::from_name(role) else {
                continue;
            };
            if name.ends_with(".cert.asc") {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let cert = PublicKey::from_bytes(&bytes)
                    .with_context(|| format!("{} is not a certificate", path.display()))?;
                keys.public.entry(role).or_default().push(cert);
            } else if name.ends_with(".key.asc") {
                let mode = std::fs::metadata(&path)
                    .with_context(|| format!("cannot stat {}", path.display()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    bail!(
                        "{} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let key = SigningKey::from_bytes(&bytes)
                    .with_context(|| format!("{} is not a usable secret key", path.display()))?;
                keys.secret.entry(role).or_default().push(key);
            }
        }
        Ok(keys)
    }

    pub fn public(&self, role: Role) -> &[PublicKey] {
        self.public.get(&role).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn secret(&self, role: Role) -> &[SigningKey] {
        self.secret.get(&role).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Generates a key for `role` into `dir`: `<role>-<name>.{cert,key,rev}.asc`. Returns the key id.
pub fn keygen(dir: &Path, role: Role, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("key name {name:?}: use letters, digits, '-', '_' and '.'");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (key, revocation) = keys::generate(name, role, SystemTime::now())?;
    let base = format!("{role}-{name}");
    files::write_secret(&dir.join(format!("{base}.key.asc")), &key.armored_secret()?)?;
    files::write_secret(&dir.join(format!("{base}.rev.asc")), &revocation)?;
    files::write_new(
        &dir.join(format!("{base}.cert.asc")),
        &key.public().armored()?,
    )?;
    files::sync_dir(dir)?;
    Ok(key.key_id())
}
