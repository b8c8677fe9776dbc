//! tenantd's configuration: drop-ins `tenantd.d/*.toml` (see rampart_common::config), validated into `Settings`.
//!
//! Plans are tables, `[plans.<name>]`; a later file's table replaces an earlier one of the same name whole (no
//! field-by-field merge inside a plan: a plan is read as one thing). Every path is configurable so tests run the
//! daemon against temporary directories.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rampart_common::config::{self, Fragment};
use rampart_interfaces::tenant::{check_name, Plan};
use serde::Deserialize;

pub const DEFAULT_DATABASE: &str = "/var/lib/rampart-tenantd/tenants.db";
pub const DEFAULT_DIRECTORY_ROOT: &str = "/var/lib/rampart-tenants";
pub const DEFAULT_USERDB_DIR: &str = "/run/userdb";
/// identityd's accounts use 10000–19999 by default; tenants get the next block.
pub const DEFAULT_UID_MIN: u32 = 20_000;
pub const DEFAULT_UID_MAX: u32 = 29_999;
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// The smallest `memory_max` a plan may have: an SFTP session (sshd's two processes) must fit.
const MIN_MEMORY: u64 = 32 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFragment {
    pub cpu_percent: Option<u32>,
    pub memory_max: Option<Size>,
    pub io_weight: Option<u64>,
    pub tasks_max: Option<u64>,
}

/// A byte count: an integer, or a string with a binary suffix as systemd writes them (`512M`, `2G`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFragment {
    pub database: Option<PathBuf>,
    pub directory_root: Option<PathBuf>,
    pub userdb_dir: Option<PathBuf>,
    pub uid_min: Option<u32>,
    pub uid_max: Option<u32>,
    pub retention_days: Option<u64>,
    #[serde(default)]
    pub plans: BTreeMap<String, PlanFragment>,
}

impl Fragment for TenantFragment {
    fn merge(&mut self, o: Self) {
        config::take(&mut self.database, o.database);
        config::take(&mut self.directory_root, o.directory_root);
        config::take(&mut self.userdb_dir, o.userdb_dir);
        config::take(&mut self.uid_min, o.uid_min);
        config::take(&mut self.uid_max, o.uid_max);
        config::take(&mut self.retention_days, o.retention_days);
        self.plans.extend(o.plans);
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: PathBuf,
    pub directory_root: PathBuf,
    pub userdb_dir: PathBuf,
    pub uids: std::ops::RangeInclusive<u32>,
    pub retention: Duration,
    /// By name.
    pub plans: BTreeMap<String, Plan>,
}

impl Settings {
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }
}

fn invalid(m: String) -> rampart_common::Error {
    rampart_common::Error::ConfigInvalid(m)
}

/// `512M` → 536870912. Suffixes K, M, G, T are powers of 1024, as in systemd's `MemoryMax=`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K')) => (&t[..i], 10),
        Some((i, 'M')) => (&t[..i], 20),
        Some((i, 'G')) => (&t[..i], 30),
        Some((i, 'T')) => (&t[..i], 40),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a size: a number of bytes, or a number with K, M, G or T (512M)"
            )
        })
}

fn plan(name: &str, f: PlanFragment) -> Result<Plan, rampart_common::Error> {
    let err = |m: String| invalid(format!("plans.{name}: {m}"));
    let missing = |key: &str| {
        err(format!(
            "{key} is missing (every plan sets all four limits)"
        ))
    };
    let cpu_percent = f.cpu_percent.ok_or_else(|| missing("cpu_percent"))?;
    let memory_max = match f.memory_max.ok_or_else(|| missing("memory_max"))? {
        Size::Bytes(n) => n,
        Size::Text(t) => parse_size(&t).map_err(err)?,
    };
    let io_weight = f.io_weight.ok_or_else(|| missing("io_weight"))?;
    let tasks_max = f.tasks_max.ok_or_else(|| missing("tasks_max"))?;
    if !(1..=100_000).contains(&cpu_percent) {
        return Err(err(format!(
            "cpu_percent = {cpu_percent} must be 1..=100000 (100 is one CPU)"
        )));
    }
    if memory_max < MIN_MEMORY {
        return Err(err(format!(
            "memory_max = {memory_max} bytes is below 32M, too little for an SFTP session"
        )));
    }
    if !(1..=10_000).contains(&io_weight) {
        return Err(err(format!(
            "io_weight = {io_weight} must be 1..=10000 (100 is the default)"
        )));
    }
    if !(8..=4_194_304).contains(&tasks_max) {
        return Err(err(format!("tasks_max = {tasks_max} must be 8..=4194304")));
    }
    Ok(Plan {
        name: name.to_owned(),
        cpu_percent,
        memory_max,
        io_weight,
        tasks_max,
    })
}

impl TryFrom<TenantFragment> for Settings {
    type Error = rampart_common::Error;
    fn try_from(f: TenantFragment) -> Result<Self, Self::Error> {
        let abs = |name: &str, p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(invalid(format!(
                    "{name} = {:?} must be an absolute path",
                    p.display()
                )))
            }
        };
        let (min, max) = (
            f.uid_min.unwrap_or(DEFAULT_UID_MIN),
            f.uid_max.unwrap_or(DEFAULT_UID_MAX),
        );
        // Below 1000 are system users; from 60000 on, nobody and systemd's dynamic and container ranges.
        if min < 1000 || max >= 60_000 || min > max {
            return Err(invalid(format!(
                "uid_min = {min}, uid_max = {max}: need 1000 <= uid_min <= uid_max < 60000"
            )));
        }
        let days = f.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if days > 3650 {
            return Err(invalid(format!("retention_days = {days} must be 0..=3650")));
        }
        let mut plans = BTreeMap::new();
        for (name, fragment) in f.plans {
            check_name(&name).map_err(|e| invalid(format!("plan name: {e}")))?;
            plans.insert(name.clone(), plan(&name, fragment)?);
        }
        if plans.is_empty() {
            return Err(invalid(
                "no plans are configured: add a [plans.<name>] table to a tenantd.d drop-in".into(),
            ));
        }
        Ok(Settings {
            database: abs("database", f.database, DEFAULT_DATABASE)?,
            directory_root: abs("directory_root", f.directory_root, DEFAULT_DIRECTORY_ROOT)?,
            userdb_dir: abs("userdb_dir", f.userdb_dir, DEFAULT_USERDB_DIR)?,
            uids: min..=max,
            retention: Duration::from_secs(days * 86_400),
            plans,
        })
    }
}

/// Loads the drop-ins from `roots` (the standard ones when empty) and validates them.
pub fn load(roots: &[PathBuf]) -> Result<Settings, rampart_common::Error> {
    let fragment: TenantFragment = if roots.is_empty() {
        config::load("tenantd")?
    } else {
        config::load_from("tenantd", roots)?
    };
    Settings::try_from(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, rampart_common::Error> {
        Settings::try_from(toml::from_str::<TenantFragment>(text).unwrap())
    }

    #[test]
    fn sizes_are_binary_like_systemds() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "M", "1.5G", "-1K", "12Q", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_and_defaults() {
        let s = parse(
            "[plans.small]\ncpu_percent = 50\nmemory_max = \"512M\"\nio_weight = 100\ntasks_max = 256\n",
        )
        .unwrap();
        assert_eq!(s.uids, 20_000..=29_999);
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        let small = s.plan("small").unwrap();
        assert_eq!((small.cpu_percent, small.memory_max), (50, 512 << 20));
    }

    #[test]
    fn a_later_plan_table_replaces_the_earlier_whole() {
        let mut a: TenantFragment = toml::from_str(
            "[plans.small]\ncpu_percent = 50\nmemory_max = \"512M\"\nio_weight = 100\ntasks_max = 256\n",
        )
        .unwrap();
        a.merge(toml::from_str("[plans.small]\ncpu_percent = 20\n").unwrap());
        let err = Settings::try_from(a).unwrap_err().to_string();
        assert!(err.contains("plans.small: memory_max is missing"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let plan = |body: &str| format!("[plans.p]\n{body}\n");
        let full = "cpu_percent = 50\nmemory_max = \"512M\"\nio_weight = 100\ntasks_max = 256";
        for (text, needle) in [
            (String::new(), "no plans"),
            (plan(&full.replace("50", "0")), "cpu_percent"),
            (plan(&full.replace("512M", "1M")), "below 32M"),
            (
                plan(&full.replace("io_weight = 100", "io_weight = 0")),
                "io_weight",
            ),
            (format!("uid_min = 500\n{}", plan(full)), "uid_min"),
            (format!("database = \"rel\"\n{}", plan(full)), "absolute"),
            (format!("[plans.Big]\n{full}"), "plan name"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
