//! What tenantd asks of systemd, behind a small trait: the real one calls the Manager over the system bus
//! (rampart_common::units); the crate's tests on a private bus, where no systemd runs, use a fake that records
//! the calls.
//!
//! - A tenant's slice `tenant-<name>.slice` is a transient unit (nothing is written under `/etc`: the root is
//!   read-only). systemd places it under `tenant.slice` by its name. Transient units are gone after a reboot, so
//!   the daemon makes the slice again for every active tenant at start.
//! - An SFTP session becomes a transient scope `tenant-<name>-session-<pid>.scope` in that slice holding sshd's
//!   per-connection process, so everything the session starts runs under the plan's limits.
//! - A tenant's long-running service is a transient unit `tenant-<name>-<service>.service` in that slice, run as
//!   the tenant's user in its data directory under a sandbox ([`service_properties`]), `Type=exec` (the start
//!   fails when the program cannot be run) and `Restart=on-failure`. Transient too, so the daemon starts them
//!   again at start.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use rampart_common::units::{self, Property, UnitState, UNIT_EXISTS};
use rampart_interfaces::tenant::Plan;
use zbus::zvariant::Value;

/// A systemd call's future; the error is systemd's message.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
/// The state of the loaded units a pattern matches.
pub type States<'a> = Pin<Box<dyn Future<Output = Result<Vec<UnitState>, String>> + Send + 'a>>;

/// What a tenant's service is made of.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec<'a> {
    /// `Description=`.
    pub description: &'a str,
    pub slice: &'a str,
    /// The tenant's uid, which is also its gid.
    pub uid: u32,
    /// The tenant's data directory: its working directory and the only place it may write (besides its private
    /// `/tmp`).
    pub directory: &'a Path,
    /// Checked (rampart_interfaces::tenant::check_argv): absolute program first.
    pub argv: &'a [String],
}

pub trait Systemd: Send + Sync + std::fmt::Debug {
    /// Makes sure `slice` is loaded, active and has `plan`'s limits (creating it when it is not loaded).
    fn ensure_slice<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a>;
    /// Changes the limits of a running slice at once (until the next boot; the daemon reapplies them at start).
    fn set_limits<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a>;
    /// Stops `unit` and every process in it; not loaded counts as stopped.
    fn stop<'a>(&'a self, unit: &'a str) -> Reply<'a>;
    /// Creates `scope` in `slice` holding process `pid`.
    fn start_scope<'a>(&'a self, scope: &'a str, slice: &'a str, pid: u32) -> Reply<'a>;
    /// Creates and starts the service `unit` and waits until its program runs. A unit of that name still loaded
    /// (failed, or left from an earlier start) is stopped and forgotten first.
    fn start_service<'a>(&'a self, unit: &'a str, spec: ServiceSpec<'a>) -> Reply<'a>;
    /// Stops the service `unit` and forgets it, a failed state included; not loaded counts as stopped.
    fn stop_service<'a>(&'a self, unit: &'a str) -> Reply<'a>;
    /// The loaded units matching `pattern` (e.g. `tenant-shop-*.service`) with their states.
    fn states<'a>(&'a self, pattern: &'a str) -> States<'a>;
}

/// Whether a unit in `active` state (`ActiveState`) is running or on its way there: left alone at start.
pub fn is_up(active: &str) -> bool {
    matches!(active, "active" | "activating" | "reloading")
}

/// A tenant's service as unit properties. The sandbox is what systemd accepts for transient units (checked by
/// tests/nspawn/tenants), chosen so an ordinary server program (a web application, a worker) still runs:
/// - the tenant's own uid/gid, no capabilities, `NoNewPrivileges=` (no setuid way up);
/// - the whole file system read-only (`ProtectSystem=strict`) but the data directory; a private `/tmp` and
///   `/dev` (so its own `/dev/shm`), no `/home` or `/root`, other users' processes invisible;
/// - kernel tunables, modules, logs, the clock, the host name and cgroups out of reach; no namespaces, realtime,
///   personality changes or SUID/SGID files; native system calls of `@system-service` only (EPERM otherwise);
///   IPv4/IPv6, UNIX and netlink sockets (a server must listen and resolve names).
///
/// Not set: `MemoryDenyWriteExecute=` (JITs — Node.js, Java, PHP's — need writable code) and `PrivateNetwork=`
/// (tenants serve the network). Limits come from the slice. No `$VAR` expansion in the command line
/// (`ExecStartEx` with `no-env-expand`): it runs exactly as given.
pub fn service_properties<'a>(spec: &ServiceSpec<'a>) -> Vec<Property<'a>> {
    let (program, id) = (
        spec.argv.first().map_or("", String::as_str),
        spec.uid.to_string(),
    );
    let directory = spec.directory.display().to_string();
    let exec = vec![(
        program.to_owned(),
        spec.argv.to_vec(),
        vec!["no-env-expand".to_owned()],
    )];
    let yes = |name| (name, Value::Bool(true));
    vec![
        ("Description", Value::from(spec.description)),
        ("Slice", Value::from(spec.slice)),
        ("Type", Value::from("exec")),
        ("ExecStartEx", Value::from(exec)),
        ("User", Value::from(id.clone())),
        ("Group", Value::from(id)),
        ("WorkingDirectory", Value::from(directory.clone())),
        ("Restart", Value::from("on-failure")),
        ("RestartUSec", Value::U64(1_000_000)),
        // A stop (suspend) waits for the program's end: SIGKILL after 10 s rather than systemd's 90.
        ("TimeoutStopUSec", Value::U64(10_000_000)),
        ("UMask", Value::U32(0o027)),
        yes("NoNewPrivileges"),
        ("CapabilityBoundingSet", Value::U64(0)),
        ("AmbientCapabilities", Value::U64(0)),
        ("ProtectSystem", Value::from("strict")),
        ("ReadWritePaths", Value::from(vec![directory])),
        ("ProtectHome", Value::from("yes")),
        yes("PrivateTmp"),
        yes("PrivateDevices"),
        yes("PrivateIPC"),
        ("ProtectProc", Value::from("invisible")),
        ("KeyringMode", Value::from("private")),
        yes("ProtectKernelTunables"),
        yes("ProtectKernelModules"),
        yes("ProtectKernelLogs"),
        yes("ProtectControlGroups"),
        yes("ProtectClock"),
        yes("ProtectHostname"),
        yes("RestrictSUIDSGID"),
        yes("LockPersonality"),
        yes("RestrictRealtime"),
        // The namespace types it may create: none.
        ("RestrictNamespaces", Value::U64(0)),
        (
            "SystemCallArchitectures",
            Value::from(vec!["native".to_owned()]),
        ),
        (
            "SystemCallFilter",
            Value::from((true, vec!["@system-service".to_owned()])),
        ),
        // A refused system call fails with EPERM rather than killing the program.
        (
            "SystemCallErrorNumber",
            Value::I32(nix::errno::Errno::EPERM as i32),
        ),
        (
            "RestrictAddressFamilies",
            Value::from((
                true,
                ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]
                    .map(str::to_owned)
                    .to_vec(),
            )),
        ),
    ]
}

/// How often [`Manager::start_service`] retries while systemd still holds a stopped unit's name.
const NAME_RETRIES: u32 = 10;

/// The scope of an SFTP session held by sshd process `pid`.
pub fn scope_name(tenant: &str, pid: u32) -> String {
    format!("tenant-{tenant}-session-{pid}.scope")
}

/// A plan as unit properties: `CPUQuota=` (as `CPUQuotaPerSecUSec`), `MemoryMax=`, `IOWeight=`, `TasksMax=`.
pub fn limits(plan: &Plan) -> Vec<Property<'static>> {
    vec![
        (
            "CPUQuotaPerSecUSec",
            Value::U64(u64::from(plan.cpu_percent) * 10_000),
        ),
        ("MemoryMax", Value::U64(plan.memory_max)),
        ("IOWeight", Value::U64(plan.io_weight)),
        ("TasksMax", Value::U64(plan.tasks_max)),
    ]
}

/// systemd's Manager on the system bus.
#[derive(Debug, Clone)]
pub struct Manager {
    conn: zbus::Connection,
}

impl Manager {
    pub fn new(conn: zbus::Connection) -> Manager {
        Manager { conn }
    }
}

fn text(e: zbus::Error) -> String {
    rampart_interfaces::error::message(&e)
}

impl Systemd for Manager {
    fn ensure_slice<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a> {
        Box::pin(async move {
            let tenant = rampart_interfaces::tenant::tenant_of_slice(slice).unwrap_or(slice);
            let description = format!("Rampart tenant {tenant}");
            let mut properties = limits(plan);
            properties.push(("Description", Value::from(description.as_str())));
            match units::start_transient(&self.conn, slice, &properties).await {
                // Loaded already (the daemon restarted; the slice kept running): set the limits, start it if
                // it was stopped.
                Err(e) if units::is_error(&e, UNIT_EXISTS) => {
                    units::set_properties(&self.conn, slice, true, &limits(plan))
                        .await
                        .map_err(text)?;
                    units::start(&self.conn, slice).await.map_err(text)
                }
                other => other.map_err(text),
            }
        })
    }

    fn set_limits<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a> {
        Box::pin(async move {
            units::set_properties(&self.conn, slice, true, &limits(plan))
                .await
                .map_err(text)
        })
    }

    fn stop<'a>(&'a self, unit: &'a str) -> Reply<'a> {
        Box::pin(async move { units::stop(&self.conn, unit).await.map_err(text) })
    }

    fn start_scope<'a>(&'a self, scope: &'a str, slice: &'a str, pid: u32) -> Reply<'a> {
        Box::pin(async move {
            let properties: Vec<Property<'_>> = vec![
                ("Description", Value::from("Rampart tenant SFTP session")),
                ("Slice", Value::from(slice)),
                ("PIDs", Value::from(vec![pid])),
                // Gone from systemd's memory once it ends, even if it failed.
                ("CollectMode", Value::from("inactive-or-failed")),
                // A suspend waits for the session's end: SIGKILL after 10 s rather than systemd's 90.
                ("TimeoutStopUSec", Value::U64(10_000_000)),
            ];
            units::start_transient(&self.conn, scope, &properties)
                .await
                .map_err(text)
        })
    }

    fn start_service<'a>(&'a self, unit: &'a str, spec: ServiceSpec<'a>) -> Reply<'a> {
        Box::pin(async move {
            let properties = service_properties(&spec);
            let mut tries = 0;
            loop {
                match units::start_transient(&self.conn, unit, &properties).await {
                    // Loaded still (failed, or started before and stopped since): stopped and forgotten, then
                    // made anew, so it runs with the command line it is given now. systemd lets go of the
                    // name once it has collected the unit, which may take a moment.
                    Err(e) if units::is_error(&e, UNIT_EXISTS) && tries < NAME_RETRIES => {
                        tries += 1;
                        self.forget(unit).await?;
                        if tries > 1 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    other => return other.map_err(text),
                }
            }
        })
    }

    fn stop_service<'a>(&'a self, unit: &'a str) -> Reply<'a> {
        Box::pin(self.forget(unit))
    }

    fn states<'a>(&'a self, pattern: &'a str) -> States<'a> {
        Box::pin(async move { units::list(&self.conn, &[pattern]).await.map_err(text) })
    }
}

impl Manager {
    /// Stops `unit` and resets a failed state, so systemd lets go of it.
    async fn forget(&self, unit: &str) -> Result<(), String> {
        units::stop(&self.conn, unit).await.map_err(text)?;
        units::reset_failed(&self.conn, unit).await.map_err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_per_second_usec() {
        let plan = Plan {
            name: "p".into(),
            cpu_percent: 150,
            memory_max: 1 << 30,
            io_weight: 200,
            tasks_max: 64,
        };
        let props = limits(&plan);
        assert_eq!(props[0], ("CPUQuotaPerSecUSec", Value::U64(1_500_000)));
        assert_eq!(props[3], ("TasksMax", Value::U64(64)));
        assert_eq!(scope_name("shop", 42), "tenant-shop-session-42.scope");
    }

    #[test]
    fn a_service_runs_as_the_tenant_in_its_slice_and_directory() {
        let argv = vec!["/usr/bin/python3".to_owned(), "$HOME".to_owned()];
        let spec = ServiceSpec {
            description: "d",
            slice: "tenant-shop.slice",
            uid: 20_000,
            directory: Path::new("/var/lib/rampart-tenants/shop/data"),
            argv: &argv,
        };
        let props = service_properties(&spec);
        let get = |name: &str| {
            props
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("Slice"), Value::from("tenant-shop.slice"));
        assert_eq!(get("User"), Value::from("20000"));
        assert_eq!(get("Group"), Value::from("20000"));
        assert_eq!(
            get("ReadWritePaths"),
            Value::from(vec!["/var/lib/rampart-tenants/shop/data".to_owned()])
        );
        let exec = get("ExecStartEx");
        assert_eq!(exec.value_signature().to_string(), "a(sasas)");
        let text = format!("{exec:?}");
        assert!(
            text.contains("no-env-expand") && text.contains("$HOME"),
            "{text}"
        );
        assert_eq!(
            get("SystemCallFilter").value_signature().to_string(),
            "(bas)"
        );
        assert_eq!(get("NoNewPrivileges"), Value::Bool(true));
        let mut names: Vec<&str> = props.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), props.len(), "no property twice");
    }
}
