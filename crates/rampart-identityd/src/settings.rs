//! identityd's configuration: drop-ins `identityd.d/*.toml` (see rampart_common::config), validated into
//! `Settings`.

use std::path::PathBuf;
use std::time::Duration;

use rampart_common::config::{self, Fragment};
use serde::Deserialize;

pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-identityd/identity.db";
pub const DEFAULT_USERDB_DIR: &str = "/run/userdb";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFragment {
    pub database: Option<PathBuf>,
    pub userdb_dir: Option<PathBuf>,
    pub home_root: Option<PathBuf>,
    pub uid_base: Option<u32>,
    pub uid_max: Option<u32>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub concurrent_hashes: Option<usize>,
    pub session_idle_secs: Option<u64>,
    pub session_max_secs: Option<u64>,
    pub challenge_secs: Option<u64>,
    pub setup_code_secs: Option<u64>,
    pub setup_token_secs: Option<u64>,
    pub throttle_window_secs: Option<u64>,
    pub throttle_per_account: Option<usize>,
    pub throttle_per_source: Option<usize>,
    pub site_names: Option<Vec<String>>,
    pub ssh_sync: Option<bool>,
    pub expiry_check_secs: Option<u64>,
}

impl Fragment for IdentityFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.database, o.database);
        config::take(&mut self.userdb_dir, o.userdb_dir);
        config::take(&mut self.home_root, o.home_root);
        config::take(&mut self.uid_base, o.uid_base);
        config::take(&mut self.uid_max, o.uid_max);
        config::take(&mut self.argon2_memory_kib, o.argon2_memory_kib);
        config::take(&mut self.argon2_iterations, o.argon2_iterations);
        config::take(&mut self.concurrent_hashes, o.concurrent_hashes);
        config::take(&mut self.session_idle_secs, o.session_idle_secs);
        config::take(&mut self.session_max_secs, o.session_max_secs);
        config::take(&mut self.challenge_secs, o.challenge_secs);
        config::take(&mut self.setup_code_secs, o.setup_code_secs);
        config::take(&mut self.setup_token_secs, o.setup_token_secs);
        config::take(&mut self.throttle_window_secs, o.throttle_window_secs);
        config::take(&mut self.throttle_per_account, o.throttle_per_account);
        config::take(&mut self.throttle_per_source, o.throttle_per_source);
        config::take(&mut self.site_names, o.site_names);
        config::take(&mut self.ssh_sync, o.ssh_sync);
        config::take(&mut self.expiry_check_secs, o.expiry_check_secs);
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: PathBuf,
    /// Where nss-systemd finds the accounts' user records; None: not written (tests without NSS).
    pub userdb_dir: Option<PathBuf>,
    pub home_root: PathBuf,
    pub uid_base: u32,
    pub uid_max: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub concurrent_hashes: usize,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub challenge: Duration,
    pub setup_code: Duration,
    pub setup_token: Duration,
    pub throttle: crate::throttle::Limits,
    pub site_names: Vec<String>,
    pub ssh_sync: bool,
    pub expiry_check: Duration,
}

impl TryFrom<IdentityFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: IdentityFragment) -> Result<Self, Self::Error> {
        let invalid = |m: String| rampart_common::Error::ConfigInvalid(m);
        let abs = |name: &str, p: PathBuf| {
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(invalid(format!(
                    "{name} = {:?} must be an absolute path",
                    p.display()
                )))
            }
        };
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(format!("{name} = {v} must be {lo}..={hi}")))
            }
        };
        let secs = |name: &str, v: Option<u64>, default: u64, lo: u64, hi: u64| {
            range(name, v.unwrap_or(default), lo, hi).map(Duration::from_secs)
        };
        let userdb_dir = match f.userdb_dir {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(abs("userdb_dir", p)?),
            None => Some(PathBuf::from(DEFAULT_USERDB_DIR)),
        };
        let uid_base = f.uid_base.unwrap_or(10_000);
        let uid_max = f.uid_max.unwrap_or(19_999);
        // Regular users only: below 1000 are system users, from 60000 systemd's own ranges begin.
        if !(1000..60_000).contains(&uid_base) || uid_max <= uid_base || uid_max >= 60_000 {
            return Err(invalid(format!(
                "uid_base = {uid_base}, uid_max = {uid_max}: both must be in 1000..60000 and uid_base < uid_max"
            )));
        }
        let memory = f.argon2_memory_kib.unwrap_or(65_536);
        range("argon2_memory_kib", u64::from(memory), 1024, 1_048_576)?;
        let iterations = f.argon2_iterations.unwrap_or(3);
        range("argon2_iterations", u64::from(iterations), 1, 20)?;
        let hashes = f.concurrent_hashes.unwrap_or(2);
        range("concurrent_hashes", hashes as u64, 1, 64)?;
        let throttle = crate::throttle::Limits {
            window_secs: range(
                "throttle_window_secs",
                f.throttle_window_secs.unwrap_or(900),
                10,
                86_400,
            )?,
            per_account: range(
                "throttle_per_account",
                f.throttle_per_account.unwrap_or(5) as u64,
                1,
                1000,
            )? as usize,
            per_source: range(
                "throttle_per_source",
                f.throttle_per_source.unwrap_or(10) as u64,
                1,
                10_000,
            )? as usize,
        };
        let site_names = f.site_names.unwrap_or_default();
        if let Some(bad) = site_names
            .iter()
            .find(|n| n.trim().is_empty() || n.len() > 200)
        {
            return Err(invalid(format!("site_names: {bad:?} is empty or too long")));
        }
        Ok(Settings {
            database: abs(
                "database",
                f.database.unwrap_or_else(|| DEFAULT_DATABASE.into()),
            )?,
            userdb_dir,
            home_root: abs("home_root", f.home_root.unwrap_or_else(|| "/home".into()))?,
            uid_base,
            uid_max,
            argon2_memory_kib: memory,
            argon2_iterations: iterations,
            concurrent_hashes: hashes,
            session_idle: secs("session_idle_secs", f.session_idle_secs, 900, 60, 86_400)?,
            session_max: secs(
                "session_max_secs",
                f.session_max_secs,
                43_200,
                300,
                30 * 86_400,
            )?,
            challenge: secs("challenge_secs", f.challenge_secs, 300, 30, 3600)?,
            setup_code: secs("setup_code_secs", f.setup_code_secs, 1800, 60, 86_400)?,
            setup_token: secs("setup_token_secs", f.setup_token_secs, 3600, 300, 86_400)?,
            throttle,
            site_names,
            ssh_sync: f.ssh_sync.unwrap_or(true),
            expiry_check: secs("expiry_check_secs", f.expiry_check_secs, 5, 1, 3600)?,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: IdentityFragment = if roots.is_empty() {
        config::load("identityd")?
    } else {
        config::load_from("identityd", roots)?
    };
    Settings::try_from(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        let s = Settings::try_from(IdentityFragment::default()).unwrap();
        assert_eq!(s.session_idle, Duration::from_secs(900));
        assert_eq!(
            s.userdb_dir.as_deref(),
            Some(std::path::Path::new("/run/userdb"))
        );
        let bad = IdentityFragment {
            uid_base: Some(500),
            ..IdentityFragment::default()
        };
        assert!(Settings::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("uid_base"));
        let bad = IdentityFragment {
            session_idle_secs: Some(5),
            ..IdentityFragment::default()
        };
        assert!(Settings::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("session_idle_secs"));
    }
}
