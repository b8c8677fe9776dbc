//! The monitor's database: what must outlive the BPF maps, which start empty every time the programs load.
//!
//! - `totals` and `outbound`: the counters at the last checkpoint. At start they become the base the kernel's new
//!   counts add to, so a tenant's totals run on across restarts and reboots.
//! - `listening` and `binaries`: what was already seen, loaded back into the kernel maps at start so that a
//!   restart raises no second first-seen event.
//! - `alerts`, with an `audited` flag: an alert is stored first and delivered to the audit log after, retried
//!   until the audit log takes it.
//! - `enforcement`: per-tenant policies, re-applied at every start.
//! - `incarnations`: when rampart-tenantd created each tenant it knows. A name seen with another creation time (or
//!   no longer known) is a tenant that was purged: what it left is forgotten, so a new tenant of the same name
//!   starts with nothing seen, no totals and no enforcement ([`Store::forget`]). Alerts stay, as history.

use std::path::Path;

use rampart_interfaces::monitor::{Alert, Enforcement};
use rusqlite::{params, Connection, OptionalExtension};

use crate::wire::Stats;
use crate::Error;

const MIGRATIONS: &[&str] = &["
CREATE TABLE totals (
    tenant TEXT PRIMARY KEY,
    rx_bytes INTEGER NOT NULL, rx_packets INTEGER NOT NULL, tx_bytes INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
    connects INTEGER NOT NULL, execs INTEGER NOT NULL, flagged_execs INTEGER NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE TABLE outbound (
    tenant TEXT NOT NULL, proto INTEGER NOT NULL, port INTEGER NOT NULL, count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (tenant, proto, port)
);
CREATE TABLE listening (
    tenant TEXT NOT NULL, proto INTEGER NOT NULL, port INTEGER NOT NULL, first_seen INTEGER NOT NULL,
    PRIMARY KEY (tenant, proto, port)
);
CREATE TABLE binaries (
    tenant TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL, flags INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (tenant, dev, ino)
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
    pid INTEGER NOT NULL, program TEXT NOT NULL, port INTEGER NOT NULL,
    audited INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE enforcement (
    tenant TEXT PRIMARY KEY,
    deny_outbound TEXT NOT NULL, restrict_listen INTEGER NOT NULL, allow_listen TEXT NOT NULL
);
", "
CREATE TABLE incarnations (tenant TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
"];

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

fn db(step: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Db { step, source }
}

/// SQLite integers are signed; counters never reach 2^63, and anything odd reads as 0 rather than wrapping.
fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// An outbound port as stored: (tenant, proto, port, count).
pub type OutboundRow = (String, u8, u16, u64);

impl Store {
    pub fn open(path: &Path) -> Result<Store, Error> {
        Ok(Store {
            conn: rampart_common::db::open(path, MIGRATIONS)?,
        })
    }

    // ---- counters ----

    pub fn totals(&self) -> Result<Vec<(String, Stats)>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT tenant, rx_bytes, rx_packets, tx_bytes, tx_packets, connects, execs, flagged_execs \
                 FROM totals ORDER BY tenant",
            )
            .map_err(db("read the totals"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Stats {
                        rx_bytes: from_db(r.get(1)?),
                        rx_packets: from_db(r.get(2)?),
                        tx_bytes: from_db(r.get(3)?),
                        tx_packets: from_db(r.get(4)?),
                        connects: from_db(r.get(5)?),
                        execs: from_db(r.get(6)?),
                        flagged_execs: from_db(r.get(7)?),
                    },
                ))
            })
            .map_err(db("read the totals"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the totals"))
    }

    pub fn outbound(&self) -> Result<Vec<OutboundRow>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, proto, port, count FROM outbound ORDER BY tenant, proto, port")
            .map_err(db("read the outbound ports"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, u16>(2)?,
                    from_db(r.get(3)?),
                ))
            })
            .map_err(db("read the outbound ports"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the outbound ports"))
    }

    /// Saves every total and outbound count in one transaction (a checkpoint is all or nothing).
    pub fn checkpoint(
        &mut self,
        totals: &[(String, Stats)],
        outbound: &[OutboundRow],
        now: u64,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction().map_err(db("begin a checkpoint"))?;
        {
            let mut put = tx
                .prepare(
                    "INSERT INTO totals (tenant, rx_bytes, rx_packets, tx_bytes, tx_packets, connects, execs, \
                     flagged_execs, saved_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (tenant) DO UPDATE SET rx_bytes = ?2, rx_packets = ?3, tx_bytes = ?4, \
                     tx_packets = ?5, connects = ?6, execs = ?7, flagged_execs = ?8, saved_at = ?9",
                )
                .map_err(db("save the totals"))?;
            for (tenant, s) in totals {
                put.execute(params![
                    tenant,
                    to_db(s.rx_bytes),
                    to_db(s.rx_packets),
                    to_db(s.tx_bytes),
                    to_db(s.tx_packets),
                    to_db(s.connects),
                    to_db(s.execs),
                    to_db(s.flagged_execs),
                    to_db(now)
                ])
                .map_err(db("save the totals"))?;
            }
            let mut put = tx
                .prepare(
                    "INSERT INTO outbound (tenant, proto, port, count, first_seen) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (tenant, proto, port) DO UPDATE SET count = ?4",
                )
                .map_err(db("save the outbound ports"))?;
            for (tenant, proto, port, count) in outbound {
                put.execute(params![tenant, proto, port, to_db(*count), to_db(now)])
                    .map_err(db("save the outbound ports"))?;
            }
        }
        tx.commit().map_err(db("commit a checkpoint"))
    }

    // ---- first seen ----

    /// Records a listening port; false when it was already known.
    pub fn add_listening(
        &self,
        tenant: &str,
        proto: u8,
        port: u16,
        now: u64,
    ) -> Result<bool, Error> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO listening (tenant, proto, port, first_seen) VALUES (?1, ?2, ?3, ?4)",
                params![tenant, proto, port, to_db(now)],
            )
            .map_err(db("record a listening port"))?;
        Ok(n == 1)
    }

    /// One tenant's listening ports: (proto, port, first seen).
    pub fn listening(&self, tenant: &str) -> Result<Vec<(u8, u16, u64)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT proto, port, first_seen FROM listening WHERE tenant = ?1 ORDER BY proto, port")
            .map_err(db("read the listening ports"))?;
        let rows = stmt
            .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, from_db(r.get(2)?))))
            .map_err(db("read the listening ports"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the listening ports"))
    }

    /// Records an outbound port the first time; false when it was already known.
    pub fn add_outbound(
        &self,
        tenant: &str,
        proto: u8,
        port: u16,
        now: u64,
    ) -> Result<bool, Error> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO outbound (tenant, proto, port, count, first_seen) VALUES (?1, ?2, ?3, 0, ?4)",
                params![tenant, proto, port, to_db(now)],
            )
            .map_err(db("record an outbound port"))?;
        Ok(n == 1)
    }

    /// Records a binary; false when it was already known.
    pub fn add_binary(
        &self,
        tenant: &str,
        dev: u64,
        ino: u64,
        path: &str,
        flags: u8,
        now: u64,
    ) -> Result<bool, Error> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO binaries (tenant, dev, ino, path, flags, first_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![tenant, to_db(dev), to_db(ino), path, flags, to_db(now)],
            )
            .map_err(db("record a binary"))?;
        Ok(n == 1)
    }

    /// One tenant's known binaries: (dev, ino).
    pub fn binaries(&self, tenant: &str) -> Result<Vec<(u64, u64)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT dev, ino FROM binaries WHERE tenant = ?1")
            .map_err(db("read the binaries"))?;
        let rows = stmt
            .query_map([tenant], |r| Ok((from_db(r.get(0)?), from_db(r.get(1)?))))
            .map_err(db("read the binaries"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the binaries"))
    }

    // ---- alerts ----

    /// Stores an alert (id and time filled in), dropping the oldest beyond `keep`.
    pub fn add_alert(&self, alert: &mut Alert, keep: u32) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT INTO alerts (time, tenant, kind, message, pid, program, port) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_db(alert.time),
                    alert.tenant,
                    alert.kind,
                    alert.message,
                    alert.pid,
                    alert.program,
                    alert.port
                ],
            )
            .map_err(db("store an alert"))?;
        alert.id = from_db(self.conn.last_insert_rowid());
        // Only alerts the audit log already has may go.
        self.conn
            .execute(
                "DELETE FROM alerts WHERE audited = 1 AND id <= (SELECT MAX(id) FROM alerts) - ?1",
                params![keep],
            )
            .map_err(db("trim the alerts"))?;
        Ok(())
    }

    fn alert_rows(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Alert>, Error> {
        let mut stmt = self.conn.prepare(sql).map_err(db("read the alerts"))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(Alert {
                    id: from_db(r.get(0)?),
                    time: from_db(r.get(1)?),
                    tenant: r.get(2)?,
                    kind: r.get(3)?,
                    message: r.get(4)?,
                    pid: r.get(5)?,
                    program: r.get(6)?,
                    port: r.get(7)?,
                })
            })
            .map_err(db("read the alerts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the alerts"))
    }

    /// Alerts after `since_id`, oldest first; with `since_id` 0, the newest `limit`.
    pub fn alerts(&self, since_id: u64, limit: u32) -> Result<Vec<Alert>, Error> {
        const COLUMNS: &str =
            "SELECT id, time, tenant, kind, message, pid, program, port FROM alerts";
        if since_id == 0 {
            let mut newest = self.alert_rows(
                &format!("{COLUMNS} ORDER BY id DESC LIMIT ?1"),
                params![limit],
            )?;
            newest.reverse();
            return Ok(newest);
        }
        self.alert_rows(
            &format!("{COLUMNS} WHERE id > ?1 ORDER BY id LIMIT ?2"),
            params![to_db(since_id), limit],
        )
    }

    /// Alerts the audit log does not have yet, oldest first.
    pub fn unaudited(&self) -> Result<Vec<Alert>, Error> {
        self.alert_rows(
            "SELECT id, time, tenant, kind, message, pid, program, port FROM alerts WHERE audited = 0 ORDER BY id \
             LIMIT 100",
            [],
        )
    }

    pub fn mark_audited(&self, id: u64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE alerts SET audited = 1 WHERE id = ?1",
                params![to_db(id)],
            )
            .map_err(db("mark an alert audited"))?;
        Ok(())
    }

    // ---- enforcement ----

    pub fn set_enforcement(&self, e: &Enforcement) -> Result<(), Error> {
        let list = |ports: &[u16]| serde_json::to_string(ports).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT INTO enforcement (tenant, deny_outbound, restrict_listen, allow_listen) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (tenant) DO UPDATE SET deny_outbound = ?2, restrict_listen = ?3, allow_listen = ?4",
                params![e.tenant, list(&e.deny_outbound), e.restrict_listen, list(&e.allow_listen)],
            )
            .map_err(db("store the enforcement"))?;
        Ok(())
    }

    pub fn enforcement(&self, tenant: &str) -> Result<Option<Enforcement>, Error> {
        self.conn
            .query_row(
                "SELECT deny_outbound, restrict_listen, allow_listen FROM enforcement WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()
            .map_err(db("read the enforcement"))?
            .map(|(deny, restrict, allow)| {
                let ports = |text: &str| {
                    serde_json::from_str::<Vec<u16>>(text)
                        .map_err(|e| Error::Invalid(format!("stored port list of {tenant} does not parse: {e}")))
                };
                Ok(Enforcement {
                    tenant: tenant.to_owned(),
                    deny_outbound: ports(&deny)?,
                    restrict_listen: restrict,
                    allow_listen: ports(&allow)?,
                })
            })
            .transpose()
    }

    // ---- incarnations ----

    /// When rampart-tenantd said each tenant was created, as last recorded.
    pub fn incarnations(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, created_at FROM incarnations ORDER BY tenant")
            .map_err(db("read the incarnations"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, from_db(r.get(1)?))))
            .map_err(db("read the incarnations"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("read the incarnations"))
    }

    pub fn set_incarnation(&self, tenant: &str, created_at: u64) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT INTO incarnations (tenant, created_at) VALUES (?1, ?2) \
                 ON CONFLICT (tenant) DO UPDATE SET created_at = ?2",
                params![tenant, to_db(created_at)],
            )
            .map_err(db("record an incarnation"))?;
        Ok(())
    }

    /// Everything kept about a tenant but its alerts, in one transaction.
    pub fn forget(&mut self, tenant: &str) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction()
            .map_err(db("begin forgetting a tenant"))?;
        for table in [
            "totals",
            "outbound",
            "listening",
            "binaries",
            "enforcement",
            "incarnations",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1"),
                params![tenant],
            )
            .map_err(db("forget a tenant"))?;
        }
        tx.commit().map_err(db("commit forgetting a tenant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("m.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn checkpoints_replace_totals_whole() {
        let (_d, mut s) = store();
        let a = Stats {
            rx_bytes: 10,
            execs: 2,
            ..Stats::default()
        };
        s.checkpoint(&[("alice".into(), a)], &[("alice".into(), 6, 3333, 4)], 100)
            .unwrap();
        let b = a.plus(a);
        s.checkpoint(&[("alice".into(), b)], &[("alice".into(), 6, 3333, 9)], 200)
            .unwrap();
        assert_eq!(s.totals().unwrap(), vec![("alice".to_owned(), b)]);
        assert_eq!(
            s.outbound().unwrap(),
            vec![("alice".to_owned(), 6, 3333, 9)]
        );
    }

    #[test]
    fn first_seen_is_first_only_once() {
        let (_d, s) = store();
        assert!(s.add_listening("alice", 6, 9200, 1).unwrap());
        assert!(!s.add_listening("alice", 6, 9200, 2).unwrap());
        assert!(s.add_listening("bob", 6, 9200, 2).unwrap());
        assert!(s.add_binary("alice", 1, 2, "/tmp/x", 3, 1).unwrap());
        assert!(!s.add_binary("alice", 1, 2, "/tmp/x", 3, 1).unwrap());
        assert!(s.add_outbound("alice", 6, 25, 1).unwrap());
        assert!(!s.add_outbound("alice", 6, 25, 1).unwrap());
    }

    #[test]
    fn alerts_wait_for_the_audit_log_before_they_may_be_trimmed() {
        let (_d, s) = store();
        let mut ids = Vec::new();
        for i in 0..15u16 {
            let mut a = Alert {
                id: 0,
                time: u64::from(i),
                tenant: "alice".into(),
                kind: "listen".into(),
                message: format!("port {i}"),
                pid: 1,
                program: "nc".into(),
                port: i,
            };
            s.add_alert(&mut a, 10).unwrap();
            ids.push(a.id);
        }
        assert_eq!(
            s.unaudited().unwrap().len(),
            15,
            "nothing audited, nothing trimmed"
        );
        for id in &ids {
            s.mark_audited(*id).unwrap();
        }
        let mut one = s.alerts(0, 1).unwrap()[0].clone();
        s.add_alert(&mut one, 10).unwrap();
        let kept = s.alerts(0, 100).unwrap();
        assert_eq!(
            kept.len(),
            10,
            "the newest ten: nine audited ones and the new one"
        );
        assert_eq!(kept.last().unwrap().id, one.id);
        assert_eq!(s.alerts(ids[12], 100).unwrap().len(), 3);
    }

    #[test]
    fn enforcement_round_trips() {
        let (_d, s) = store();
        assert_eq!(s.enforcement("alice").unwrap(), None);
        let e = Enforcement {
            tenant: "alice".into(),
            deny_outbound: vec![25, 3333],
            restrict_listen: true,
            allow_listen: vec![8080],
        };
        s.set_enforcement(&e).unwrap();
        assert_eq!(s.enforcement("alice").unwrap(), Some(e));
    }

    #[test]
    fn forgetting_a_tenant_leaves_others_and_the_alerts() {
        let (_d, mut s) = store();
        let stats = Stats {
            tx_bytes: 7,
            ..Stats::default()
        };
        for t in ["alice", "bob"] {
            s.checkpoint(&[(t.into(), stats)], &[(t.into(), 6, 25, 1)], 1)
                .unwrap();
            s.add_listening(t, 6, 9200, 1).unwrap();
            s.add_binary(t, 1, 2, "/tmp/x", 3, 1).unwrap();
            s.set_enforcement(&Enforcement {
                tenant: t.into(),
                deny_outbound: vec![25],
                restrict_listen: false,
                allow_listen: vec![],
            })
            .unwrap();
            s.set_incarnation(t, 100).unwrap();
        }
        let mut alert = Alert {
            id: 0,
            time: 1,
            tenant: "alice".into(),
            kind: "listen".into(),
            message: "port 9200".into(),
            pid: 1,
            program: "nc".into(),
            port: 9200,
        };
        s.add_alert(&mut alert, 10).unwrap();

        s.forget("alice").unwrap();
        assert_eq!(s.totals().unwrap(), vec![("bob".to_owned(), stats)]);
        assert_eq!(s.outbound().unwrap(), vec![("bob".to_owned(), 6, 25, 1)]);
        assert!(s.listening("alice").unwrap().is_empty());
        assert!(s.binaries("alice").unwrap().is_empty());
        assert_eq!(s.enforcement("alice").unwrap(), None);
        assert_eq!(s.incarnations().unwrap(), vec![("bob".to_owned(), 100)]);
        assert!(
            s.add_listening("alice", 6, 9200, 2).unwrap(),
            "seen again as new"
        );
        assert_eq!(s.listening("bob").unwrap().len(), 1);
        assert!(s.enforcement("bob").unwrap().is_some());
        assert_eq!(s.alerts(0, 10).unwrap(), vec![alert], "history stays");
    }
}
