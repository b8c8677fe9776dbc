//! webd's configuration: drop-ins `webd.d/*.toml` (see rampart_common::config), validated into `Settings`.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rampart_common::config::{self, Fragment};
use serde::Deserialize;

pub const DEFAULT_STATE: &str = "/var/lib/rampart-webd";
pub const DEFAULT_FINGERPRINT_FILE: &str = "/run/rampart-webd-cert/fingerprint";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFragment {
    pub state_dir: Option<PathBuf>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub requests_per_second: Option<u32>,
    pub request_burst: Option<u32>,
    pub auth_attempts_per_minute: Option<u32>,
    pub header_timeout_secs: Option<u64>,
    pub certificate_names: Option<Vec<String>>,
    pub fingerprint_file: Option<PathBuf>,
}

impl Fragment for WebFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.state_dir, o.state_dir);
        config::take(&mut self.trusted_proxies, o.trusted_proxies);
        config::take(&mut self.max_connections, o.max_connections);
        config::take(&mut self.requests_per_second, o.requests_per_second);
        config::take(&mut self.request_burst, o.request_burst);
        config::take(
            &mut self.auth_attempts_per_minute,
            o.auth_attempts_per_minute,
        );
        config::take(&mut self.header_timeout_secs, o.header_timeout_secs);
        config::take(&mut self.certificate_names, o.certificate_names);
        config::take(&mut self.fingerprint_file, o.fingerprint_file);
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Certificate and key.
    pub state_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy in front). Empty: nobody's.
    pub trusted_proxies: Vec<IpNet>,
    pub max_connections: usize,
    pub requests_per_second: u32,
    pub request_burst: u32,
    /// Password, second-factor and setup-code submissions per source and minute.
    pub auth_attempts_per_minute: u32,
    pub header_timeout: Duration,
    /// Extra names for the first-boot certificate (the host name is always one).
    pub certificate_names: Vec<String>,
    /// Where `make-cert` publishes the certificate's fingerprint for the console (None: nowhere).
    pub fingerprint_file: Option<PathBuf>,
}

impl TryFrom<WebFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: WebFragment) -> Result<Self, Self::Error> {
        let invalid = |m: String| rampart_common::Error::ConfigInvalid(m);
        let state_dir = f.state_dir.unwrap_or_else(|| DEFAULT_STATE.into());
        if !state_dir.is_absolute() {
            return Err(invalid(format!(
                "state_dir = {:?} must be an absolute path",
                state_dir.display()
            )));
        }
        let trusted_proxies = f
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(format!("trusted_proxies: {s:?} is not an address or CIDR"))
                    })
            })
            .collect::<Result<_, _>>()?;
        let within = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(format!("{name} = {v} must be {lo}..={hi}")))
            }
        };
        let names = f.certificate_names.unwrap_or_default();
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || n.len() > 253 || n.contains(char::is_whitespace))
        {
            return Err(invalid(format!(
                "certificate_names: {bad:?} is not a host name or address"
            )));
        }
        Ok(Settings {
            state_dir,
            trusted_proxies,
            max_connections: within(
                "max_connections",
                f.max_connections.unwrap_or(256) as u64,
                1,
                100_000,
            )? as usize,
            requests_per_second: within(
                "requests_per_second",
                f.requests_per_second.unwrap_or(50).into(),
                1,
                100_000,
            )? as u32,
            request_burst: within(
                "request_burst",
                f.request_burst.unwrap_or(100).into(),
                1,
                100_000,
            )? as u32,
            auth_attempts_per_minute: within(
                "auth_attempts_per_minute",
                f.auth_attempts_per_minute.unwrap_or(10).into(),
                1,
                10_000,
            )? as u32,
            header_timeout: Duration::from_secs(within(
                "header_timeout_secs",
                f.header_timeout_secs.unwrap_or(10),
                1,
                300,
            )?),
            certificate_names: names,
            fingerprint_file: match f.fingerprint_file {
                Some(p) if p.as_os_str().is_empty() => None,
                Some(p) if !p.is_absolute() => {
                    return Err(invalid(format!(
                        "fingerprint_file = {:?} must be an absolute path",
                        p.display()
                    )))
                }
                Some(p) => Some(p),
                None => Some(PathBuf::from(DEFAULT_FINGERPRINT_FILE)),
            },
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: WebFragment = if roots.is_empty() {
        config::load("webd")?
    } else {
        config::load_from("webd", roots)?
    };
    Settings::try_from(fragment)
}
