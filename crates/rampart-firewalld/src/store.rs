//! The firewall's state in SQLite: rules, the allowlist, SSH access, the pending change, and an outbox of audit
//! records for things the daemon did on its own (expiry, revert, reconcile, boot restore).
//!
//! The outbox is written in the same transaction as the change it describes, then delivered to rampart-auditd:
//! so `--restore` at boot (no bus yet) still leaves a trail, and an unreachable audit log delays records rather
//! than losing them.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::spec::{self, Ports, Protocol};
use crate::Error;

const MIGRATIONS: &[&str] = &["
CREATE TABLE rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    protocol TEXT NOT NULL,
    ports TEXT NOT NULL,
    sources TEXT NOT NULL,
    comment TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    reviewed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    permanent_reason TEXT NOT NULL
);
CREATE TABLE allow (
    cidr TEXT PRIMARY KEY,
    comment TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE ssh (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ports TEXT NOT NULL,
    sources TEXT NOT NULL
);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    by TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE pending (
    change_id INTEGER PRIMARY KEY REFERENCES changes(id),
    description TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    confirm_by INTEGER NOT NULL,
    revert_ports TEXT NOT NULL,
    revert_sources TEXT NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"];

/// A stored rule, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub id: u64,
    pub protocol: Protocol,
    pub ports: Ports,
    pub sources: Vec<IpNet>,
    pub comment: String,
    pub added_by: String,
    pub added_at: u64,
    pub reviewed_at: u64,
    pub expires_at: u64,
    pub permanent_reason: String,
}

impl StoredRule {
    pub fn target(&self) -> String {
        format!("rule {} {}/{}", self.id, self.protocol.as_str(), self.ports)
    }

    pub fn to_wire(&self) -> rampart_interfaces::firewall::Rule {
        rampart_interfaces::firewall::Rule {
            id: self.id,
            protocol: self.protocol.as_str().to_owned(),
            ports: self.ports.to_string(),
            sources: self.sources.iter().map(ToString::to_string).collect(),
            comment: self.comment.clone(),
            added_by: self.added_by.clone(),
            added_at: self.added_at,
            reviewed_at: self.reviewed_at,
            expires_at: self.expires_at,
            permanent_reason: self.permanent_reason.clone(),
        }
    }
}

/// Where SSH is reachable from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    pub ports: Vec<u16>,
    /// Empty: anywhere.
    pub sources: Vec<IpNet>,
}

impl Ssh {
    pub fn to_wire(&self) -> rampart_interfaces::firewall::SshAccess {
        rampart_interfaces::firewall::SshAccess {
            ports: self.ports.clone(),
            sources: self.sources.iter().map(ToString::to_string).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub cidr: IpNet,
    pub comment: String,
    pub added_by: String,
    pub added_at: u64,
}

/// A lockout-prone change waiting for confirmation, with what to restore if it is not confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub change_id: u64,
    pub description: String,
    pub requested_by: String,
    pub confirm_by: u64,
    pub revert_to: Ssh,
}

/// Everything the kernel table is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub ssh: Ssh,
    pub rules: Vec<StoredRule>,
    pub allow: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: i64,
    pub action: String,
    pub target: String,
    pub details: String,
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
}

impl Store {
    /// Opens (creating and migrating) the database; on first use SSH access starts as `initial_ssh_ports` from
    /// anywhere.
    pub fn open(path: &Path, initial_ssh_ports: &[u16]) -> Result<Store, Error> {
        let conn = rampart_common::db::open(path, MIGRATIONS)?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store
            .conn
            .execute(
                "INSERT OR IGNORE INTO ssh (id, ports, sources) VALUES (1, ?1, '')",
                params![join_ports(initial_ssh_ports)],
            )
            .map_err(err("set the initial SSH access"))?;
        Ok(store)
    }
}

fn err(step: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |source| Error::Db { step, source }
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn join_nets(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_ports_list(s: &str) -> Result<Vec<u16>, Error> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| Error::DbValue(format!("SSH port {p:?}")))
        })
        .collect()
}

fn parse_nets(s: &str) -> Result<Vec<IpNet>, Error> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| spec::cidr(p).map_err(Error::DbValue))
        .collect()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn ssh(conn: &Connection) -> Result<Ssh, Error> {
    let (ports, sources): (String, String) = conn
        .query_row("SELECT ports, sources FROM ssh WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(err("read SSH access"))?;
    Ok(Ssh {
        ports: parse_ports_list(&ports)?,
        sources: parse_nets(&sources)?,
    })
}

pub fn set_ssh(tx: &Transaction<'_>, ssh: &Ssh) -> Result<(), Error> {
    tx.execute(
        "UPDATE ssh SET ports = ?1, sources = ?2 WHERE id = 1",
        params![join_ports(&ssh.ports), join_nets(&ssh.sources)],
    )
    .map_err(err("store SSH access"))?;
    Ok(())
}

pub fn rules(conn: &Connection) -> Result<Vec<StoredRule>, Error> {
    let mut stmt = conn
        .prepare(
            "SELECT id, protocol, ports, sources, comment, added_by, added_at, reviewed_at, expires_at,
                    permanent_reason FROM rules ORDER BY id",
        )
        .map_err(err("read rules"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, String>(9)?,
            ))
        })
        .map_err(err("read rules"))?;
    let mut out = Vec::new();
    for row in rows {
        let (
            id,
            protocol,
            ports,
            sources,
            comment,
            added_by,
            added_at,
            reviewed_at,
            expires_at,
            reason,
        ) = row.map_err(err("read rules"))?;
        out.push(StoredRule {
            id: to_u64(id),
            protocol: Protocol::parse(&protocol).map_err(Error::DbValue)?,
            ports: Ports::parse(&ports).map_err(Error::DbValue)?,
            sources: parse_nets(&sources)?,
            comment,
            added_by,
            added_at: to_u64(added_at),
            reviewed_at: to_u64(reviewed_at),
            expires_at: to_u64(expires_at),
            permanent_reason: reason,
        });
    }
    Ok(out)
}

pub fn rule(conn: &Connection, id: u64) -> Result<Option<StoredRule>, Error> {
    Ok(rules(conn)?.into_iter().find(|r| r.id == id))
}

/// Inserts a rule and returns its id (`rule.id` is ignored).
pub fn insert_rule(tx: &Transaction<'_>, rule: &StoredRule) -> Result<u64, Error> {
    tx.execute(
        "INSERT INTO rules (protocol, ports, sources, comment, added_by, added_at, reviewed_at, expires_at,
                            permanent_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            rule.protocol.as_str(),
            rule.ports.to_string(),
            join_nets(&rule.sources),
            rule.comment,
            rule.added_by,
            to_i64(rule.added_at),
            to_i64(rule.reviewed_at),
            to_i64(rule.expires_at),
            rule.permanent_reason,
        ],
    )
    .map_err(err("store the rule"))?;
    Ok(to_u64(tx.last_insert_rowid()))
}

pub fn delete_rule(tx: &Transaction<'_>, id: u64) -> Result<bool, Error> {
    let n = tx
        .execute("DELETE FROM rules WHERE id = ?1", params![to_i64(id)])
        .map_err(err("delete the rule"))?;
    Ok(n > 0)
}

pub fn review_rule(conn: &Connection, id: u64, now: u64) -> Result<bool, Error> {
    let n = conn
        .execute(
            "UPDATE rules SET reviewed_at = ?2 WHERE id = ?1",
            params![to_i64(id), to_i64(now)],
        )
        .map_err(err("mark the rule reviewed"))?;
    Ok(n > 0)
}

pub fn allowlist(conn: &Connection) -> Result<Vec<AllowEntry>, Error> {
    let mut stmt = conn
        .prepare("SELECT cidr, comment, added_by, added_at FROM allow ORDER BY added_at, cidr")
        .map_err(err("read the allowlist"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(err("read the allowlist"))?;
    let mut out = Vec::new();
    for row in rows {
        let (cidr, comment, added_by, added_at) = row.map_err(err("read the allowlist"))?;
        out.push(AllowEntry {
            cidr: spec::cidr(&cidr).map_err(Error::DbValue)?,
            comment,
            added_by,
            added_at: to_u64(added_at),
        });
    }
    Ok(out)
}

pub fn insert_allow(tx: &Transaction<'_>, entry: &AllowEntry) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO allow (cidr, comment, added_by, added_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(cidr) DO UPDATE SET comment = excluded.comment",
        params![
            entry.cidr.to_string(),
            entry.comment,
            entry.added_by,
            to_i64(entry.added_at)
        ],
    )
    .map_err(err("store the allowlist entry"))?;
    Ok(())
}

pub fn delete_allow(tx: &Transaction<'_>, cidr: &IpNet) -> Result<bool, Error> {
    let n = tx
        .execute(
            "DELETE FROM allow WHERE cidr = ?1",
            params![cidr.to_string()],
        )
        .map_err(err("delete the allowlist entry"))?;
    Ok(n > 0)
}

pub fn desired(conn: &Connection) -> Result<Desired, Error> {
    Ok(Desired {
        ssh: ssh(conn)?,
        rules: rules(conn)?,
        allow: allowlist(conn)?.into_iter().map(|a| a.cidr).collect(),
    })
}

/// Records a change and returns its id.
pub fn new_change(
    tx: &Transaction<'_>,
    kind: &str,
    target: &str,
    by: &str,
    at: u64,
) -> Result<u64, Error> {
    tx.execute(
        "INSERT INTO changes (kind, target, by, at) VALUES (?1, ?2, ?3, ?4)",
        params![kind, target, by, to_i64(at)],
    )
    .map_err(err("record the change"))?;
    Ok(to_u64(tx.last_insert_rowid()))
}

pub fn pending(conn: &Connection) -> Result<Option<PendingRow>, Error> {
    let row = conn
        .query_row(
            "SELECT change_id, description, requested_by, confirm_by, revert_ports, revert_sources
             FROM pending ORDER BY change_id LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .optional()
        .map_err(err("read the pending change"))?;
    let Some((id, description, requested_by, confirm_by, ports, sources)) = row else {
        return Ok(None);
    };
    Ok(Some(PendingRow {
        change_id: to_u64(id),
        description,
        requested_by,
        confirm_by: to_u64(confirm_by),
        revert_to: Ssh {
            ports: parse_ports_list(&ports)?,
            sources: parse_nets(&sources)?,
        },
    }))
}

pub fn insert_pending(tx: &Transaction<'_>, p: &PendingRow) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO pending (change_id, description, requested_by, confirm_by, revert_ports, revert_sources)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            to_i64(p.change_id),
            p.description,
            p.requested_by,
            to_i64(p.confirm_by),
            join_ports(&p.revert_to.ports),
            join_nets(&p.revert_to.sources),
        ],
    )
    .map_err(err("store the pending change"))?;
    Ok(())
}

pub fn delete_pending(tx: &Transaction<'_>, change_id: u64) -> Result<bool, Error> {
    let n = tx
        .execute(
            "DELETE FROM pending WHERE change_id = ?1",
            params![to_i64(change_id)],
        )
        .map_err(err("delete the pending change"))?;
    Ok(n > 0)
}

pub fn push_outbox(
    tx: &Connection,
    action: &str,
    target: &str,
    details: &serde_json::Value,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO outbox (action, target, details) VALUES (?1, ?2, ?3)",
        params![action, target, details.to_string()],
    )
    .map_err(err("queue the audit record"))?;
    Ok(())
}

pub fn outbox(conn: &Connection) -> Result<Vec<OutboxRecord>, Error> {
    let mut stmt = conn
        .prepare("SELECT id, action, target, details FROM outbox ORDER BY id LIMIT 100")
        .map_err(err("read the audit outbox"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OutboxRecord {
                id: r.get(0)?,
                action: r.get(1)?,
                target: r.get(2)?,
                details: r.get(3)?,
            })
        })
        .map_err(err("read the audit outbox"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(err("read the audit outbox"))
}

pub fn outbox_done(conn: &Connection, id: i64) -> Result<(), Error> {
    conn.execute("DELETE FROM outbox WHERE id = ?1", params![id])
        .map_err(err("clear the delivered audit record"))?;
    Ok(())
}

pub fn meta(conn: &Connection, key: &str) -> Result<u64, Error> {
    let v: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(err("read metadata"))?;
    Ok(v.map_or(0, to_u64))
}

pub fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, to_i64(value)],
    )
    .map_err(err("write metadata"))?;
    Ok(())
}
