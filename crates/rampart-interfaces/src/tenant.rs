//! `org.rampart.Tenant1`: tenants (customers) of this machine, served by rampart-tenantd.
//!
//! A tenant is a system user of the same name (a JSON user record for nss-systemd under `/run/userdb`, regenerated
//! from the tenant database: the root filesystem is read-only), a directory under `/var` that is its SFTP chroot,
//! and a slice `tenant.slice/tenant-<name>.slice` whose CPU, memory, IO and task limits come from a named plan.
//! (systemd names a slice's parent after its prefix: `tenant-<name>.slice` lives under `tenant.slice`.) Its SFTP
//! sessions and the services started for it run in that slice, where rampart-monitord watches them.
//!
//! Life cycle: `active` → `suspended` (processes stopped, logins refused, data kept) → `active` again; any state →
//! `deleted` (processes stopped, logins refused, data kept until `purge_at`, then removed for good; `Resume` brings a
//! deleted tenant back before then).
//!
//! Mutating methods take the caller's session token first (empty for root on the console) and go through
//! authorize → audit → act with the permissions `tenant.<verb>`. Times are Unix seconds (UTC); `0` means "none".

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Tenant1";
pub const OBJECT_PATH: &str = "/org/rampart/Tenant1";
pub const INTERFACE: &str = "org.rampart.Tenant1";

/// The parent slice of every tenant's slice.
pub const PARENT_SLICE: &str = "tenant.slice";
/// The static group every tenant user belongs to: sshd's `Match Group` (SFTP only, chrooted) and PAM key on it.
pub const TENANTS_GROUP: &str = "rampart-tenants";

/// [`Tenant::state`] values.
pub const STATE_ACTIVE: &str = "active";
pub const STATE_SUSPENDED: &str = "suspended";
pub const STATE_DELETED: &str = "deleted";

/// The slice unit of tenant `name`.
pub fn slice_name(name: &str) -> String {
    format!("tenant-{name}.slice")
}

/// The tenant a slice unit name belongs to (`tenant-alice.slice` → `alice`), if it is a tenant slice.
pub fn tenant_of_slice(slice: &str) -> Option<&str> {
    let name = slice.strip_prefix("tenant-")?.strip_suffix(".slice")?;
    check_name(name).ok().map(|()| name)
}

/// Tenant names: a lowercase letter, then lowercase letters or digits, at most 24 characters. Stricter than user
/// names on purpose: no `-` (systemd would escape it in the slice name) and no `_`, so a name means the same thing
/// as a user, a slice, a directory and a metric label.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 24;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid tenant name (a lowercase letter, then lowercase letters or digits; at most 24 \
             characters)"
        ))
    }
}

/// The transient service unit of tenant `tenant`'s service `name` (`tenant-shop-web.service`).
pub fn service_unit(tenant: &str, name: &str) -> String {
    format!("tenant-{tenant}-{name}.service")
}

/// Most arguments a service's command line may have, and the longest argument in bytes.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;

/// Service names: lowercase letters, digits and `-`, starting with a letter or digit, at most 32 characters.
/// The unit is `tenant-<tenant>-<name>.service`; tenant names have no `-`, so the unit names its tenant
/// unambiguously.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 32;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid service name (lowercase letters, digits and '-', starting with a letter or \
             digit; at most 32 characters)"
        ))
    }
}

/// A service's command line: 1 to [`MAX_ARGS`] arguments of at most [`MAX_ARG_BYTES`] bytes each, none with a
/// NUL, the first an absolute path (systemd runs it as is: no shell, no `$PATH` search, no `$VAR` expansion).
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    let Some(first) = argv.first() else {
        return Err(
            "the command line is empty: give the program's absolute path and its arguments".into(),
        );
    };
    if argv.len() > MAX_ARGS {
        return Err(format!(
            "the command line has {} arguments; at most {MAX_ARGS} are allowed",
            argv.len()
        ));
    }
    if let Some((i, _)) = argv
        .iter()
        .enumerate()
        .find(|(_, a)| a.len() > MAX_ARG_BYTES)
    {
        return Err(format!(
            "argument {i} is longer than {MAX_ARG_BYTES} bytes; put long values in a file in the tenant's data \
             directory"
        ));
    }
    if let Some((i, _)) = argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        return Err(format!("argument {i} contains a NUL byte"));
    }
    if !first.starts_with('/') {
        return Err(format!(
            "the program {first:?} is not an absolute path (e.g. /usr/bin/python3 or \
             /var/lib/rampart-tenants/<tenant>/data/app)"
        ));
    }
    Ok(())
}

/// A plan: the limits a tenant's slice gets. Plans are configured in `tenantd.d/*.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Plan {
    pub name: String,
    /// CPU time per wall-clock time, in percent of one CPU (`CPUQuota=`; 200 = two CPUs).
    pub cpu_percent: u32,
    /// `MemoryMax=` in bytes.
    pub memory_max: u64,
    /// `IOWeight=` (1–10000, default 100).
    pub io_weight: u64,
    /// `TasksMax=`: processes and threads.
    pub tasks_max: u64,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Tenant {
    pub name: String,
    pub uid: u32,
    /// One of `STATE_*`.
    pub state: String,
    pub plan: String,
    /// The slice unit, e.g. `tenant-alice.slice`.
    pub slice: String,
    /// The SFTP chroot (root-owned); the tenant's files are in its `data` directory.
    pub directory: String,
    pub created_at: u64,
    pub created_by: String,
    /// Why it was suspended or deleted, as given; empty when active.
    pub reason: String,
    /// When a deleted tenant's data is removed for good; 0 unless deleted.
    pub purge_at: u64,
}

/// A long-running service of a tenant: a transient unit `tenant-<tenant>-<name>.service` in the tenant's slice,
/// running as the tenant's user in its data directory, sandboxed, restarted when it fails. Kept by rampart-tenantd
/// and started again after a reboot while the tenant is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ServiceInfo {
    pub tenant: String,
    pub name: String,
    /// The unit, e.g. `tenant-shop-web.service`.
    pub unit: String,
    /// The command line, run as is (no shell).
    pub argv: Vec<String>,
    /// systemd's `ActiveState` (`active`, `activating`, `failed`, `inactive`…); `inactive` when systemd has not
    /// loaded the unit (the tenant is suspended or deleted, or the service was stopped).
    pub active: String,
    /// systemd's `SubState` (`running`, `auto-restart`, `dead`…).
    pub sub: String,
    pub created_at: u64,
    pub created_by: String,
}

#[zbus::proxy(
    interface = "org.rampart.Tenant1",
    default_service = "org.rampart.Tenant1",
    default_path = "/org/rampart/Tenant1",
    gen_blocking = false
)]
pub trait Tenant {
    /// Every tenant, deleted ones (still within their retention) included, by name.
    fn list(&self) -> zbus::Result<Vec<Tenant>>;

    /// The configured plans.
    fn plans(&self) -> zbus::Result<Vec<Plan>>;

    /// Creates a tenant on `plan` (permission `tenant.create`): user, directory, slice.
    fn create(&self, token: &str, name: &str, plan: &str) -> zbus::Result<Tenant>;

    /// Moves a tenant to another plan; the slice's limits change at once (permission `tenant.plan`).
    fn set_plan(&self, token: &str, name: &str, plan: &str) -> zbus::Result<Tenant>;

    /// Stops every process of the tenant and refuses its logins (permission `tenant.suspend`).
    fn suspend(&self, token: &str, name: &str, reason: &str) -> zbus::Result<Tenant>;

    /// Lets a suspended tenant, or a deleted one before its purge, log in again (permission `tenant.resume`).
    fn resume(&self, token: &str, name: &str) -> zbus::Result<Tenant>;

    /// Stops the tenant and refuses its logins; its data is removed for good after the retention period
    /// (permission `tenant.delete`).
    fn delete(&self, token: &str, name: &str, reason: &str) -> zbus::Result<Tenant>;

    /// Starts a long-running service of an active tenant and keeps it: after a reboot, and when the tenant is
    /// resumed, it is started again; a suspend or delete stops it (permission `tenant.service`). `name`: see
    /// [`check_service_name`]; `argv`: see [`check_argv`]. Refused when the tenant has a service of that name.
    fn start_service(
        &self,
        token: &str,
        tenant: &str,
        name: &str,
        argv: Vec<String>,
    ) -> zbus::Result<ServiceInfo>;

    /// Stops a tenant's service and forgets it (permission `tenant.service`). Allowed whatever the tenant's state.
    fn stop_service(&self, token: &str, tenant: &str, name: &str) -> zbus::Result<()>;

    /// A tenant's services, by name, with their state as systemd has it.
    fn services(&self, tenant: &str) -> zbus::Result<Vec<ServiceInfo>>;

    /// For sshd's PAM hook only (root; `rampart-tenant-session`, in the account stack): puts process `pid`, sshd's
    /// process of an SSH login of tenant user `user`, into a scope in the tenant's slice. Refused unless the tenant
    /// is active and `pid` is sshd's, so a suspended tenant cannot log in.
    fn open_session(&self, user: &str, pid: u32) -> zbus::Result<()>;

    /// A tenant was created, changed or removed (`name`, its new state; `purged` when gone for good).
    #[zbus(signal)]
    fn changed(&self, name: &str, state: &str) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_mean_the_same_everywhere() {
        for ok in ["alice", "a", "shop42", &"x".repeat(24)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "9x",
            "a-b",
            "a_b",
            "a.b",
            "a b",
            &"x".repeat(25),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_names_and_command_lines() {
        for ok in ["web", "a", "0cron", "my-app-2", &"x".repeat(32)] {
            assert!(check_service_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "Web", "a_b", "a.b", "a/b", "a b", &"x".repeat(33)] {
            assert!(check_service_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(service_unit("shop", "web"), "tenant-shop-web.service");
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(check_argv(&v(&["/usr/bin/python3", "-m", "http.server"])).is_ok());
        for (bad, needle) in [
            (v(&[]), "empty"),
            (v(&["python3"]), "absolute"),
            (v(&["/bin/x", "a\0b"]), "NUL"),
            (v(&["/bin/x", &"y".repeat(4097)]), "longer"),
            (vec!["/bin/x".to_owned(); 65], "at most 64"),
        ] {
            let err = check_argv(&bad).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert!(check_argv(&vec!["/bin/x".to_owned(); 64]).is_ok());
    }

    #[test]
    fn slices_round_trip() {
        assert_eq!(slice_name("alice"), "tenant-alice.slice");
        assert_eq!(tenant_of_slice("tenant-alice.slice"), Some("alice"));
        for not in [
            "tenant.slice",
            "tenant-a-b.slice",
            "user-1000.slice",
            "tenant-alice.scope",
        ] {
            assert_eq!(tenant_of_slice(not), None, "{not}");
        }
    }
}
