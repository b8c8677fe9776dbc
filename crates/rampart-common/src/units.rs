//! systemd's Manager over the bus, in one place: the state of units, as the panel's dashboard and the console's
//! status screen show it (`ListUnitsByPatterns`, which systemd answers to any local caller), and the few unit
//! operations daemons perform — transient units, their properties, stopping — each waiting for its job to finish.
//! systemd lets uid 0 do the latter without polkit (the image has none), so only root daemons call them.

use std::time::Duration;

use futures_lite::StreamExt;
use serde::Serialize;
use zbus::zvariant::{DynamicType, OwnedObjectPath, Value};

/// systemd's error reply when a unit is not loaded (stopping it is then nothing to do).
pub const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// systemd's error reply when a transient unit of that name is already loaded.
pub const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";

/// How long a start or stop job may run before the caller is told it failed (systemd's own stop timeout for a
/// unit that ignores SIGTERM is 90 s unless the unit sets a shorter one).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(100);

/// A unit property as systemd's Manager methods take it (`a(sv)`): e.g. `("MemoryMax", Value::U64(1 << 30))`.
pub type Property<'a> = (&'a str, Value<'a>);

/// A unit's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    pub unit: String,
    pub description: String,
    /// `active`, `activating`, `failed`, `inactive`…
    pub active: String,
    /// The unit type's own sub-state (`running`, `exited`, `listening`…).
    pub sub: String,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    zbus::zvariant::OwnedObjectPath,
    u32,
    String,
    zbus::zvariant::OwnedObjectPath,
);

async fn manager(conn: &zbus::Connection) -> zbus::Result<zbus::Proxy<'static>> {
    zbus::Proxy::new(
        conn,
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .await
}

/// Loaded units matching `patterns` (e.g. `rampart-*.service`), sorted by name.
pub async fn list(conn: &zbus::Connection, patterns: &[&str]) -> zbus::Result<Vec<UnitState>> {
    let systemd = manager(conn).await?;
    let states: Vec<&str> = Vec::new();
    let rows: Vec<Row> = systemd
        .call("ListUnitsByPatterns", &(states, patterns))
        .await?;
    let mut out: Vec<UnitState> = rows
        .into_iter()
        .map(|r| UnitState {
            unit: r.0,
            description: r.1,
            active: r.3,
            sub: r.4,
        })
        .collect();
    out.sort_by(|a, b| a.unit.cmp(&b.unit));
    Ok(out)
}

/// How often systemd restarted `service` (`Restart=`) since this boot: its `NRestarts` property.
pub async fn restarts(conn: &zbus::Connection, service: &str) -> zbus::Result<u32> {
    let systemd = manager(conn).await?;
    let path: zbus::zvariant::OwnedObjectPath = systemd.call("LoadUnit", &(service,)).await?;
    let unit = zbus::Proxy::new(
        conn,
        "org.freedesktop.systemd1",
        path,
        "org.freedesktop.systemd1.Service",
    )
    .await?;
    unit.get_property("NRestarts").await
}

/// Whether `err` is systemd's error reply `name` (one of the constants above).
pub fn is_error(err: &zbus::Error, name: &str) -> bool {
    matches!(err, zbus::Error::MethodError(n, _, _) if n.as_str() == name)
}

/// Creates and starts the transient unit `unit` with `properties`, and waits until it started
/// (`StartTransientUnit`, mode `fail`). A unit of that name already loaded is [`UNIT_EXISTS`].
pub async fn start_transient(
    conn: &zbus::Connection,
    unit: &str,
    properties: &[Property<'_>],
) -> zbus::Result<()> {
    let aux: Vec<(&str, Vec<Property<'_>>)> = Vec::new();
    run_job(conn, "StartTransientUnit", &(unit, "fail", properties, aux)).await
}

/// Starts `unit` (`StartUnit`, mode `replace`) and waits for the job; an active unit stays as it is.
pub async fn start(conn: &zbus::Connection, unit: &str) -> zbus::Result<()> {
    run_job(conn, "StartUnit", &(unit, "replace")).await
}

/// Stops `unit` and everything in it (a slice: its scopes and services) and waits for the job. A unit that is
/// not loaded is already stopped.
pub async fn stop(conn: &zbus::Connection, unit: &str) -> zbus::Result<()> {
    match run_job(conn, "StopUnit", &(unit, "replace")).await {
        Err(e) if is_error(&e, NO_SUCH_UNIT) => Ok(()),
        other => other,
    }
}

/// Forgets that `unit` failed (`ResetFailedUnit`): a failed transient unit stays loaded, holding its name, until
/// then. A unit that is not loaded has nothing to forget.
pub async fn reset_failed(conn: &zbus::Connection, unit: &str) -> zbus::Result<()> {
    match manager(conn)
        .await?
        .call_method("ResetFailedUnit", &(unit,))
        .await
    {
        Err(e) if is_error(&e, NO_SUCH_UNIT) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Changes properties of a loaded unit at once (`SetUnitProperties`); `runtime`: until the next boot only.
pub async fn set_properties(
    conn: &zbus::Connection,
    unit: &str,
    runtime: bool,
    properties: &[Property<'_>],
) -> zbus::Result<()> {
    manager(conn)
        .await?
        .call_method("SetUnitProperties", &(unit, runtime, properties))
        .await
        .map(|_| ())
}

/// Calls a Manager method that queues a job and waits for the job's end (`JobRemoved`); any result but `done`
/// is an error naming it. The signal match is in place before the call, so a job that ends at once is not missed;
/// systemd sends `JobRemoved` to the client that queued the job without a `Subscribe`.
async fn run_job<B>(conn: &zbus::Connection, method: &str, body: &B) -> zbus::Result<()>
where
    B: serde::Serialize + DynamicType,
{
    let systemd = manager(conn).await?;
    let mut removed = systemd.receive_signal("JobRemoved").await?;
    let job: OwnedObjectPath = systemd.call(method, body).await?;
    let wait = async {
        while let Some(msg) = removed.next().await {
            let (_id, path, unit, result): (u32, OwnedObjectPath, String, String) =
                msg.body().deserialize()?;
            if path == job {
                if result == "done" {
                    return Ok(());
                }
                return Err(zbus::Error::Failure(format!(
                    "systemd's {method} job for {unit} ended with \"{result}\" (`journalctl -u {unit}` says why)"
                )));
            }
        }
        Err(zbus::Error::Failure(format!(
            "lost systemd's signals while waiting for {method}"
        )))
    };
    tokio::time::timeout(JOB_TIMEOUT, wait).await.map_err(|_| {
        zbus::Error::Failure(format!(
            "systemd did not finish {method} within {} s",
            JOB_TIMEOUT.as_secs()
        ))
    })?
}

/// The units the status screens watch: the Rampart daemons, the panel's socket, and sshd. Named one by one (not
/// `rampart-*`): a pattern also matches units that are rightly inactive (conditions, other consoles' instances),
/// while a daemon missing from this list would be noticed by nobody.
pub const WATCHED: &[&str] = &[
    "rampart-auditd.service",
    "rampart-identityd.service",
    "rampart-firewalld.service",
    "rampart-guardd.service",
    "rampart-sshconfd.service",
    "rampart-updated.service",
    "rampart-tenantd.service",
    "rampart-monitord.service",
    "rampart-webd.socket",
    "ssh.service",
];
