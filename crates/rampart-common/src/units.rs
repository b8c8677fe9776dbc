//! The state of systemd units, as the panel's dashboard and the console's status screen show it: one call to
//! systemd's `ListUnitsByPatterns`, which systemd answers to any local caller.

use serde::Serialize;

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
    "rampart-webd.socket",
    "ssh.service",
];
