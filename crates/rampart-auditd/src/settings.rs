//! auditd's configuration: drop-ins `auditd.d/*.toml` (see rampart_common::config), validated into `Settings`.

use std::path::PathBuf;

use rampart_common::config::{self, Fragment};
use serde::Deserialize;

/// Default database location: systemd's `StateDirectory=rampart-auditd`.
pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-auditd/audit.db";
pub const DEFAULT_MAX_BATCH: usize = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFragment {
    /// Path of the SQLite log.
    pub database: Option<PathBuf>,
    /// Most records committed in one transaction (one fsync).
    pub max_batch: Option<usize>,
}

impl Fragment for AuditFragment {
    fn merge(&mut self, other: Self) {
        config::take(&mut self.database, other.database);
        config::take(&mut self.max_batch, other.max_batch);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: PathBuf,
    pub max_batch: usize,
}

impl TryFrom<AuditFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: AuditFragment) -> Result<Self, Self::Error> {
        let database = f
            .database
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE));
        if !database.is_absolute() {
            return Err(rampart_common::Error::ConfigInvalid(format!(
                "database = {:?} must be an absolute path",
                database.display()
            )));
        }
        let max_batch = f.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
        if !(1..=65_536).contains(&max_batch) {
            return Err(rampart_common::Error::ConfigInvalid(format!(
                "max_batch = {max_batch} must be 1..=65536"
            )));
        }
        Ok(Settings {
            database,
            max_batch,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: AuditFragment = if roots.is_empty() {
        config::load("auditd")?
    } else {
        config::load_from("auditd", roots)?
    };
    Settings::try_from(fragment)
}
