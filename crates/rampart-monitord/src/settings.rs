//! monitord's configuration: drop-ins `monitord.d/*.toml` (see rampart_common::config), validated into
//! `Settings`. Defaults are shipped commented in `units/config/monitord.d/10-defaults.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_common::config::{self, Fragment};
use serde::Deserialize;

pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-monitord/monitor.db";

/// Destination ports whose first use by a tenant is an alert: mail submission and relay (spam from a hijacked
/// site), and the usual mining-pool and reverse-shell ports.
pub const DEFAULT_WATCH_PORTS: [u16; 9] = [25, 465, 587, 3333, 4444, 5555, 7777, 14444, 45700];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFragment {
    pub database: Option<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub scan_interval_secs: Option<u64>,
    pub checkpoint_secs: Option<u64>,
    pub ring_buffer_kib: Option<u32>,
    pub udp_sends: Option<bool>,
    pub watch_ports: Option<Vec<u16>>,
    pub cpu_sample_secs: Option<u64>,
    pub cpu_window_secs: Option<u64>,
    pub cpu_threshold_percent: Option<u32>,
    pub alerts_kept: Option<u32>,
}

impl Fragment for MonitorFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.database, o.database);
        config::take(&mut self.cgroup, o.cgroup);
        config::take(&mut self.scan_interval_secs, o.scan_interval_secs);
        config::take(&mut self.checkpoint_secs, o.checkpoint_secs);
        config::take(&mut self.ring_buffer_kib, o.ring_buffer_kib);
        config::take(&mut self.udp_sends, o.udp_sends);
        config::take(&mut self.watch_ports, o.watch_ports);
        config::take(&mut self.cpu_sample_secs, o.cpu_sample_secs);
        config::take(&mut self.cpu_window_secs, o.cpu_window_secs);
        config::take(&mut self.cpu_threshold_percent, o.cpu_threshold_percent);
        config::take(&mut self.alerts_kept, o.alerts_kept);
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: PathBuf,
    /// The tenant.slice cgroup directory; None: `<cgroup2 mount>/tenant.slice`.
    pub cgroup: Option<PathBuf>,
    /// How often the tenant slices are listed (new, gone, restarted).
    pub scan_interval: Duration,
    /// How often the counters are saved (a crash loses at most this much counting; a clean stop loses none).
    pub checkpoint: Duration,
    pub ring_buffer_bytes: u32,
    /// Count UDP datagrams sent with an address by destination port (the sendmsg hooks).
    pub udp_sends: bool,
    pub watch_ports: Vec<u16>,
    pub cpu_sample: Duration,
    /// How long a tenant must hold its CPU limit for the alert (the miner case).
    pub cpu_window: Duration,
    pub cpu_threshold_percent: u32,
    /// Alerts kept in the database (oldest dropped first; each is in the audit log for good).
    pub alerts_kept: u32,
}

fn invalid(text: String) -> rampart_common::Error {
    rampart_common::Error::ConfigInvalid(text)
}

fn ranged(
    name: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, rampart_common::Error> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(format!("{name} = {v} must be {min}..={max}")));
    }
    Ok(v)
}

impl TryFrom<MonitorFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: MonitorFragment) -> Result<Self, Self::Error> {
        let ring_kib = ranged(
            "ring_buffer_kib",
            f.ring_buffer_kib.map(u64::from),
            256,
            4,
            65536,
        )?;
        if !ring_kib.is_power_of_two() {
            return Err(invalid(format!(
                "ring_buffer_kib = {ring_kib} must be a power of two (4, 8, … 65536)"
            )));
        }
        let watch_ports = f
            .watch_ports
            .unwrap_or_else(|| DEFAULT_WATCH_PORTS.to_vec());
        if watch_ports.contains(&0) {
            return Err(invalid("watch_ports: 0 is not a port".into()));
        }
        let cpu_sample = ranged("cpu_sample_secs", f.cpu_sample_secs, 10, 1, 3600)?;
        let cpu_window = ranged("cpu_window_secs", f.cpu_window_secs, 600, 1, 7 * 86_400)?;
        if cpu_window < cpu_sample {
            return Err(invalid(format!(
                "cpu_window_secs = {cpu_window} is shorter than cpu_sample_secs = {cpu_sample}"
            )));
        }
        if let Some(c) = &f.cgroup {
            if !c.is_absolute() {
                return Err(invalid(format!(
                    "cgroup = {} must be an absolute path",
                    c.display()
                )));
            }
        }
        Ok(Settings {
            database: f.database.unwrap_or_else(|| DEFAULT_DATABASE.into()),
            cgroup: f.cgroup,
            scan_interval: Duration::from_secs(ranged(
                "scan_interval_secs",
                f.scan_interval_secs,
                2,
                1,
                300,
            )?),
            checkpoint: Duration::from_secs(ranged(
                "checkpoint_secs",
                f.checkpoint_secs,
                10,
                1,
                3600,
            )?),
            ring_buffer_bytes: u32::try_from(ring_kib * 1024).unwrap_or(u32::MAX),
            udp_sends: f.udp_sends.unwrap_or(true),
            watch_ports,
            cpu_sample: Duration::from_secs(cpu_sample),
            cpu_window: Duration::from_secs(cpu_window),
            cpu_threshold_percent: u32::try_from(ranged(
                "cpu_threshold_percent",
                f.cpu_threshold_percent.map(u64::from),
                95,
                1,
                100,
            )?)
            .unwrap_or(95),
            alerts_kept: u32::try_from(ranged(
                "alerts_kept",
                f.alerts_kept.map(u64::from),
                10_000,
                10,
                1_000_000,
            )?)
            .unwrap_or(10_000),
        })
    }
}

/// Loads `monitord.d` from `roots` (empty: the standard places).
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: MonitorFragment = if roots.is_empty() {
        config::load("monitord")?
    } else {
        config::load_from("monitord", roots)?
    };
    Settings::try_from(fragment)
}

/// The shipped defaults file, for the test that every key in it parses.
pub fn shipped_defaults() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units/config/monitord.d/10-defaults.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let s = Settings::try_from(MonitorFragment::default()).unwrap();
        assert_eq!(s.cpu_window, Duration::from_secs(600));
        assert_eq!(s.cpu_threshold_percent, 95);
        assert!(s.watch_ports.contains(&3333));
        let err = |f: MonitorFragment| Settings::try_from(f).unwrap_err().to_string();
        assert!(err(MonitorFragment {
            ring_buffer_kib: Some(100),
            ..Default::default()
        })
        .contains("power of two"));
        assert!(err(MonitorFragment {
            cpu_threshold_percent: Some(101),
            ..Default::default()
        })
        .contains("cpu_threshold_percent"));
        assert!(err(MonitorFragment {
            cpu_window_secs: Some(5),
            cpu_sample_secs: Some(10),
            ..Default::default()
        })
        .contains("shorter"));
        assert!(err(MonitorFragment {
            cgroup: Some("relative".into()),
            ..Default::default()
        })
        .contains("absolute"));
        assert!(err(MonitorFragment {
            watch_ports: Some(vec![0]),
            ..Default::default()
        })
        .contains("not a port"));
    }

    #[test]
    fn every_shipped_default_parses_when_uncommented() {
        let text = std::fs::read_to_string(shipped_defaults()).unwrap();
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let f: MonitorFragment = toml::from_str(&uncommented).unwrap();
        assert!(Settings::try_from(f).is_ok());
    }
}
