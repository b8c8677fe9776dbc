//! What tenantd asks of systemd, behind a small trait: the real one calls the Manager over the system bus
//! (rampart_common::units); the crate's tests on a private bus, where no systemd runs, use a fake that records
//! the calls.
//!
//! - A tenant's slice `tenant-<name>.slice` is a transient unit (nothing is written under `/etc`: the root is
//!   read-only). systemd places it under `tenant.slice` by its name. Transient units are gone after a reboot, so
//!   the daemon makes the slice again for every active tenant at start.
//! - An SFTP session becomes a transient scope `tenant-<name>-session-<pid>.scope` in that slice holding sshd's
//!   per-connection process, so everything the session starts runs under the plan's limits.

use std::future::Future;
use std::pin::Pin;

use rampart_common::units::{self, Property, UNIT_EXISTS};
use rampart_interfaces::tenant::Plan;
use zbus::zvariant::Value;

/// A systemd call's future; the error is systemd's message.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait Systemd: Send + Sync + std::fmt::Debug {
    /// Makes sure `slice` is loaded, active and has `plan`'s limits (creating it when it is not loaded).
    fn ensure_slice<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a>;
    /// Changes the limits of a running slice at once (until the next boot; the daemon reapplies them at start).
    fn set_limits<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a>;
    /// Stops `unit` and every process in it; not loaded counts as stopped.
    fn stop<'a>(&'a self, unit: &'a str) -> Reply<'a>;
    /// Creates `scope` in `slice` holding process `pid`.
    fn start_scope<'a>(&'a self, scope: &'a str, slice: &'a str, pid: u32) -> Reply<'a>;
}

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
}
