//! guardd's configuration: drop-ins `guardd.d/*.toml` (see rampart_common::config), validated into `Settings`.
//! Defaults are shipped commented in `units/config/guardd.d/10-defaults.toml`.

use std::path::PathBuf;

use rampart_common::config::{self, Fragment};
use rampart_common::journal;
use rampart_interfaces::authlog;
use serde::Deserialize;

use crate::policy::Cidr;
use crate::window::{BanTimes, Threshold};

pub const DEFAULT_CURSOR_FILE: &str = "/var/lib/rampart-guardd/cursor";

/// Journal matches: sshd's lines from root (a tenant can log as `sshd`, but not as uid 0), or the panel's
/// authentication entries from the panel's unit (journald sets `_UID`/`_SYSTEMD_UNIT`; clients cannot forge them).
pub fn default_matches() -> Vec<String> {
    vec![
        "SYSLOG_IDENTIFIER=sshd".into(),
        "_UID=0".into(),
        "+".into(),
        "_SYSTEMD_UNIT=rampart-webd.service".into(),
        format!("MESSAGE_ID={}", authlog::MESSAGE_ID_AUTH_FAILED),
        format!("MESSAGE_ID={}", authlog::MESSAGE_ID_SESSION_OPENED),
        format!("MESSAGE_ID={}", authlog::MESSAGE_ID_SESSION_CLOSED),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardFragment {
    pub ssh_max_failures: Option<u32>,
    pub ssh_window_secs: Option<u64>,
    pub panel_max_failures: Option<u32>,
    pub panel_window_secs: Option<u64>,
    pub ban_base_secs: Option<u64>,
    pub ban_factor: Option<u32>,
    pub ban_max_secs: Option<u64>,
    pub forget_after_secs: Option<u64>,
    pub allowlist: Option<Vec<String>>,
    pub admin_session_max_secs: Option<u64>,
    pub max_sources: Option<usize>,
    pub cursor_file: Option<PathBuf>,
    pub journal_matches: Option<Vec<String>>,
    pub journal_directory: Option<PathBuf>,
}

impl Fragment for GuardFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.ssh_max_failures, o.ssh_max_failures);
        config::take(&mut self.ssh_window_secs, o.ssh_window_secs);
        config::take(&mut self.panel_max_failures, o.panel_max_failures);
        config::take(&mut self.panel_window_secs, o.panel_window_secs);
        config::take(&mut self.ban_base_secs, o.ban_base_secs);
        config::take(&mut self.ban_factor, o.ban_factor);
        config::take(&mut self.ban_max_secs, o.ban_max_secs);
        config::take(&mut self.forget_after_secs, o.forget_after_secs);
        config::take(&mut self.allowlist, o.allowlist);
        config::take(&mut self.admin_session_max_secs, o.admin_session_max_secs);
        config::take(&mut self.max_sources, o.max_sources);
        config::take(&mut self.cursor_file, o.cursor_file);
        config::take(&mut self.journal_matches, o.journal_matches);
        config::take(&mut self.journal_directory, o.journal_directory);
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub ssh: Threshold,
    pub panel: Threshold,
    pub bans: BanTimes,
    pub allowlist: Vec<Cidr>,
    pub admin_session_max_secs: u64,
    pub max_sources: usize,
    pub cursor_file: PathBuf,
    pub journal_matches: Vec<String>,
    /// Read journal files from here instead of the system journal (tests, benchmarks).
    pub journal_directory: Option<PathBuf>,
}

fn invalid(text: String) -> rampart_common::Error {
    rampart_common::Error::ConfigInvalid(text)
}

fn ranged<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, rampart_common::Error> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(format!("{name} = {v} must be {min}..={max}")));
    }
    Ok(v)
}

impl TryFrom<GuardFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: GuardFragment) -> Result<Self, Self::Error> {
        const DAY: u64 = 86_400;
        let ssh = Threshold {
            max_failures: ranged("ssh_max_failures", f.ssh_max_failures, 5, 1, 1000)?,
            window_secs: ranged("ssh_window_secs", f.ssh_window_secs, 600, 1, 30 * DAY)?,
        };
        let panel = Threshold {
            max_failures: ranged("panel_max_failures", f.panel_max_failures, 5, 1, 1000)?,
            window_secs: ranged("panel_window_secs", f.panel_window_secs, 900, 1, 30 * DAY)?,
        };
        let base_secs = ranged("ban_base_secs", f.ban_base_secs, 600, 1, 365 * DAY)?;
        let bans = BanTimes {
            base_secs,
            factor: ranged("ban_factor", f.ban_factor, 3, 1, 100)?,
            max_secs: ranged(
                "ban_max_secs",
                f.ban_max_secs,
                7 * DAY,
                base_secs,
                365 * DAY,
            )?,
            forget_after_secs: ranged(
                "forget_after_secs",
                f.forget_after_secs,
                7 * DAY,
                1,
                365 * DAY,
            )?,
        };
        let allowlist = f
            .allowlist
            .unwrap_or_default()
            .iter()
            .map(|c| c.parse().map_err(|e| invalid(format!("allowlist: {e}"))))
            .collect::<Result<Vec<Cidr>, _>>()?;
        let cursor_file = f
            .cursor_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CURSOR_FILE));
        if !cursor_file.is_absolute() {
            return Err(invalid(format!(
                "cursor_file = {:?} must be an absolute path",
                cursor_file.display()
            )));
        }
        let journal_matches = f.journal_matches.unwrap_or_else(default_matches);
        for m in &journal_matches {
            journal::validate_match(m)?;
        }
        Ok(Settings {
            ssh,
            panel,
            bans,
            allowlist,
            admin_session_max_secs: ranged(
                "admin_session_max_secs",
                f.admin_session_max_secs,
                12 * 3600,
                60,
                30 * DAY,
            )?,
            max_sources: ranged("max_sources", f.max_sources, 65_536, 16, 10_000_000)?,
            cursor_file,
            journal_matches,
            journal_directory: f.journal_directory,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: GuardFragment = if roots.is_empty() {
        config::load("guardd")?
    } else {
        config::load_from("guardd", roots)?
    };
    Settings::try_from(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = Settings::try_from(GuardFragment::default()).unwrap();
        assert_eq!(
            s.ssh,
            Threshold {
                max_failures: 5,
                window_secs: 600
            }
        );
        assert_eq!(s.bans.duration(1), 600);
        assert_eq!(s.journal_matches, default_matches());
    }

    #[test]
    fn bad_values_are_named() {
        let f = GuardFragment {
            ssh_max_failures: Some(0),
            ..Default::default()
        };
        assert!(Settings::try_from(f)
            .unwrap_err()
            .to_string()
            .contains("ssh_max_failures"));
        let f = GuardFragment {
            allowlist: Some(vec!["10.0.0.0/40".into()]),
            ..Default::default()
        };
        assert!(Settings::try_from(f)
            .unwrap_err()
            .to_string()
            .contains("allowlist"));
        let f = GuardFragment {
            journal_matches: Some(vec!["--all".into()]),
            ..Default::default()
        };
        assert!(Settings::try_from(f).is_err());
        let f = GuardFragment {
            cursor_file: Some("rel/cursor".into()),
            ..Default::default()
        };
        assert!(Settings::try_from(f).is_err());
    }
}
