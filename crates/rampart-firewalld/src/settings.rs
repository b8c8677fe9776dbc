//! firewalld's configuration: drop-ins `firewalld.d/*.toml` (see rampart_common::config), validated into
//! `Settings`. Durations are written the humantime way: `24h`, `90days`, `120s`.

use std::path::PathBuf;
use std::time::Duration;

use rampart_common::config::{self, Fragment};
use rampart_common::Error;
use serde::Deserialize;

pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-firewalld/firewall.db";
pub const DEFAULT_NFT: &str = "/usr/sbin/nft";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallFragment {
    pub database: Option<PathBuf>,
    pub nft: Option<String>,
    pub default_expiry: Option<String>,
    pub max_expiry: Option<String>,
    pub review_period: Option<String>,
    pub confirm_timeout: Option<String>,
    pub reconcile_interval: Option<String>,
    pub ssh_ports: Option<Vec<u16>>,
}

impl Fragment for FirewallFragment {
    fn merge(&mut self, other: Self) {
        config::take(&mut self.database, other.database);
        config::take(&mut self.nft, other.nft);
        config::take(&mut self.default_expiry, other.default_expiry);
        config::take(&mut self.max_expiry, other.max_expiry);
        config::take(&mut self.review_period, other.review_period);
        config::take(&mut self.confirm_timeout, other.confirm_timeout);
        config::take(&mut self.reconcile_interval, other.reconcile_interval);
        config::take(&mut self.ssh_ports, other.ssh_ports);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: PathBuf,
    /// Leaked once at start-up: `Program` holds a `&'static str`.
    pub nft: &'static str,
    pub default_expiry: Duration,
    pub max_expiry: Duration,
    pub review_period: Duration,
    pub confirm_timeout: Duration,
    pub reconcile_interval: Duration,
    pub ssh_ports: Vec<u16>,
}

fn duration(
    name: &str,
    value: Option<&str>,
    default: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, Error> {
    let text = value.unwrap_or(default);
    let d = humantime::parse_duration(text).map_err(|e| {
        Error::ConfigInvalid(format!(
            "{name} = {text:?} is not a duration like \"24h\" or \"120s\": {e}"
        ))
    })?;
    if d < min || d > max {
        return Err(Error::ConfigInvalid(format!(
            "{name} = {text:?} must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

const SECOND: Duration = Duration::from_secs(1);
const YEAR: Duration = Duration::from_secs(366 * 86_400);

impl TryFrom<FirewallFragment> for Settings {
    type Error = Error;
    fn try_from(f: FirewallFragment) -> Result<Self, Self::Error> {
        let database = f
            .database
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE));
        if !database.is_absolute() {
            return Err(Error::ConfigInvalid(format!(
                "database = {:?} must be an absolute path",
                database.display()
            )));
        }
        let nft_text = f.nft.unwrap_or_else(|| DEFAULT_NFT.to_owned());
        if !nft_text.starts_with('/') {
            return Err(Error::ConfigInvalid(format!(
                "nft = {nft_text:?} must be an absolute path"
            )));
        }
        let max_expiry = duration(
            "max_expiry",
            f.max_expiry.as_deref(),
            "30days",
            SECOND,
            YEAR,
        )?;
        let default_expiry = duration(
            "default_expiry",
            f.default_expiry.as_deref(),
            "24h",
            SECOND,
            max_expiry,
        )?;
        let review_period = duration(
            "review_period",
            f.review_period.as_deref(),
            "90days",
            SECOND,
            YEAR,
        )?;
        let confirm_timeout = duration(
            "confirm_timeout",
            f.confirm_timeout.as_deref(),
            "120s",
            SECOND,
            Duration::from_secs(3600),
        )?;
        let reconcile_interval = duration(
            "reconcile_interval",
            f.reconcile_interval.as_deref(),
            "10s",
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let ssh_ports = crate::spec::ssh_ports(&f.ssh_ports.unwrap_or_else(|| vec![22]))
            .map_err(|e| Error::ConfigInvalid(format!("ssh_ports: {e}")))?;
        Ok(Settings {
            database,
            nft: Box::leak(nft_text.into_boxed_str()),
            default_expiry,
            max_expiry,
            review_period,
            confirm_timeout,
            reconcile_interval,
            ssh_ports,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, Error> {
    let fragment: FirewallFragment = if roots.is_empty() {
        config::load("firewalld")?
    } else {
        config::load_from("firewalld", roots)?
    };
    Settings::try_from(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let s = Settings::try_from(FirewallFragment::default()).unwrap();
        assert_eq!(s.default_expiry, Duration::from_secs(86_400));
        assert_eq!(s.confirm_timeout, Duration::from_secs(120));
        assert_eq!(s.ssh_ports, [22]);
        let bad = FirewallFragment {
            default_expiry: Some("40days".into()),
            ..Default::default()
        };
        let err = Settings::try_from(bad).unwrap_err().to_string();
        assert!(err.contains("default_expiry"), "{err}");
        let bad = FirewallFragment {
            confirm_timeout: Some("soon".into()),
            ..Default::default()
        };
        assert!(Settings::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
    }
}
