//! The tenants as the cgroup v2 tree shows them: `<cgroup2>/tenant.slice/tenant-<name>.slice` directories, each
//! with its cgroup id (the directory's inode number, which is what `bpf_get_current_cgroup_id` and friends return
//! on cgroup v2), its CPU use (`cpu.stat`) and its CPU limit (`cpu.max`, when the cpu controller is enabled).
//!
//! Tenants are found by listing one directory every scan rather than by asking rampart-tenantd: the kernel's tree
//! is what the programs see, a slice that systemd stopped (a suspended tenant) has no directory and nothing to
//! count, and a restarted slice gets a new cgroup id that a scan picks up.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rampart_interfaces::tenant;

use crate::Error;

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a pure v2 system, `/sys/fs/cgroup/unified` on
/// a hybrid one).
pub fn cgroup2_mount() -> Result<PathBuf, Error> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Io {
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    mount_from_mountinfo(&text).ok_or(Error::NoCgroup2)
}

fn mount_from_mountinfo(text: &str) -> Option<PathBuf> {
    // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super-options
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mountpoint = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mountpoint))
    })
}

/// A tenant slice found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCgroup {
    pub name: String,
    pub path: PathBuf,
    pub id: u64,
}

/// The tenant slices under `parent` (the tenant.slice directory), by name. A missing parent means no tenants.
pub fn scan(parent: &Path) -> Result<BTreeMap<String, TenantCgroup>, Error> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(Error::Io {
                path: parent.to_owned(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(tenant::tenant_of_slice) else {
            continue;
        };
        // A slice removed between listing and stat is simply not there this time.
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            out.insert(
                name.to_owned(),
                TenantCgroup {
                    name: name.to_owned(),
                    path: entry.path(),
                    id: meta.ino(),
                },
            );
        }
    }
    Ok(out)
}

/// The cgroup id of a cgroup v2 directory.
pub fn cgroup_id(path: &Path) -> Result<u64, Error> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// CPU time used by the cgroup so far, in microseconds (`usage_usec` of `cpu.stat`).
pub fn cpu_usage_usec(cgroup: &Path) -> Result<u64, Error> {
    let path = cgroup.join("cpu.stat");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
        .ok_or_else(|| Error::Invalid(format!("{}: no usage_usec line", path.display())))
}

/// The cgroup's CPU limit in percent of one CPU from `cpu.max` (None: no limit, or no cpu controller here).
pub fn cpu_limit_percent(cgroup: &Path) -> Option<u32> {
    parse_cpu_max(&std::fs::read_to_string(cgroup.join("cpu.max")).ok()?)
}

fn parse_cpu_max(text: &str) -> Option<u32> {
    let mut parts = text.split_whitespace();
    let quota: u64 = parts.next()?.parse().ok()?; // "max" does not parse: no limit
    let period: u64 = parts.next()?.parse().ok()?;
    if period == 0 {
        return None;
    }
    u32::try_from(quota.saturating_mul(100) / period).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_pure_and_hybrid_systems() {
        let hybrid = "25 1 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            mount_from_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            mount_from_mountinfo(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            mount_from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn cpu_max_in_percent_of_one_cpu() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(50));
        assert_eq!(parse_cpu_max("200000 100000"), Some(200));
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cpu_max("1 0"), None);
    }

    #[test]
    fn scan_lists_tenant_slices_only() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "tenant-alice.slice",
            "tenant-bob.slice",
            "tenant-a-b.slice",
            "other.scope",
        ] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("tenant-file.slice"), "").unwrap();
        let found = scan(dir.path()).unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(
            found["alice"].id,
            cgroup_id(&dir.path().join("tenant-alice.slice")).unwrap()
        );
        assert!(scan(&dir.path().join("missing")).unwrap().is_empty());
    }
}
