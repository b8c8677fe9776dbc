//! The audit log in SQLite: schema, the append path (one transaction per batch) and the readers (query, verify).
//!
//! Rows are append-only: triggers refuse UPDATE and DELETE, so a bug in this daemon cannot rewrite history. Someone
//! with write access to the file can still drop the triggers — that is what the hash chain detects.

use std::path::Path;

use rampart_interfaces::audit::{Appended, Page, Record, Verification};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::chain::{self, Fields, GENESIS};
use crate::query::Query;
use crate::Error;

pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE records (
    seq       INTEGER PRIMARY KEY,   -- 1, 2, 3 ... without gaps
    time_us   INTEGER NOT NULL,      -- microseconds since the epoch, UTC
    actor     TEXT NOT NULL,
    peer      TEXT NOT NULL,
    sender    TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    details   TEXT NOT NULL,         -- canonical JSON object
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;
CREATE INDEX records_time ON records (time_us);
CREATE INDEX records_action ON records (action);
CREATE INDEX records_actor ON records (actor);
CREATE TRIGGER records_append_only_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER records_append_only_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#];

/// A validated record waiting for its sequence number and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub time_us: i64,
    pub actor: String,
    pub peer: String,
    pub sender: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: String,
}

/// The writer's handle: the connection plus the chain head kept in memory.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    head_seq: u64,
    head_hash: [u8; 32],
    scratch: Vec<u8>,
}

impl Store {
    /// Opens (creating and migrating) the log and loads the chain head.
    pub fn open(path: &Path) -> Result<Store, Error> {
        let conn = rampart_common::db::open(path, MIGRATIONS)?;
        let head: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|source| Error::LoadHead {
                path: path.into(),
                source,
            })?;
        let (head_seq, head_hash) = match head {
            None => (0, GENESIS),
            Some((seq, hash)) => (to_seq(seq)?, to_hash(seq, &hash)?),
        };
        Ok(Store {
            conn,
            head_seq,
            head_hash,
            scratch: Vec::with_capacity(512),
        })
    }

    /// Number of records (the head's sequence number).
    pub fn len(&self) -> u64 {
        self.head_seq
    }

    pub fn is_empty(&self) -> bool {
        self.head_seq == 0
    }

    pub fn head_hash(&self) -> [u8; 32] {
        self.head_hash
    }

    /// Appends `batch` in one transaction. On success every record is durable (WAL fsynced at commit); on error
    /// none is stored and the in-memory head is unchanged.
    pub fn append_batch(&mut self, batch: &[Pending]) -> Result<Vec<Appended>, Error> {
        let (mut seq, mut hash) = (self.head_seq, self.head_hash);
        let mut out = Vec::with_capacity(batch.len());
        let tx = self.conn.transaction().map_err(Error::Append)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO records (seq, time_us, actor, peer, sender, action, target, outcome, details, \
                     prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(Error::Append)?;
            for p in batch {
                seq += 1;
                let fields = Fields {
                    seq,
                    time_us: p.time_us,
                    actor: &p.actor,
                    peer: &p.peer,
                    sender: &p.sender,
                    action: &p.action,
                    target: &p.target,
                    outcome: &p.outcome,
                    details: &p.details,
                };
                let next = chain::link(&hash, &fields, &mut self.scratch);
                insert
                    .execute(params![
                        seq as i64,
                        p.time_us,
                        p.actor,
                        p.peer,
                        p.sender,
                        p.action,
                        p.target,
                        p.outcome,
                        p.details,
                        &hash[..],
                        &next[..]
                    ])
                    .map_err(Error::Append)?;
                hash = next;
                out.push(Appended {
                    seq,
                    hash: hex::encode(next),
                });
            }
        }
        tx.commit().map_err(Error::Append)?;
        (self.head_seq, self.head_hash) = (seq, hash);
        Ok(out)
    }
}

const COLUMNS: &str =
    "seq, time_us, actor, peer, sender, action, target, outcome, details, prev_hash, hash";

/// Most bytes of record text in one reply: far below the system bus's message limit whatever the page size.
pub const PAGE_BYTES: usize = 4 << 20;

/// One page of records matching `q`: at most `q.limit` records and about [`PAGE_BYTES`] of text.
pub fn query(conn: &Connection, q: &Query) -> Result<Page, Error> {
    let (where_sql, args) = q.where_clause();
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS} FROM records WHERE {where_sql} ORDER BY seq {order} LIMIT {}",
        q.limit
    );
    let mut stmt = conn.prepare(&sql).map_err(Error::Query)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), read_record)
        .map_err(Error::Query)?;
    let (mut records, mut bytes, mut cut) = (Vec::new(), 0usize, false);
    for row in rows {
        let r = row.map_err(Error::Query)?;
        bytes += r.actor.len()
            + r.peer.len()
            + r.sender.len()
            + r.action.len()
            + r.target.len()
            + r.details.len();
        records.push(r);
        if bytes >= PAGE_BYTES {
            cut = true;
            break;
        }
    }
    let full = cut || records.len() == q.limit as usize;
    let next_cursor = if full {
        records.last().map_or(0, |r| r.seq)
    } else {
        0
    };
    Ok(Page {
        records,
        next_cursor,
    })
}

fn read_record(r: &Row<'_>) -> rusqlite::Result<Record> {
    let seq: i64 = r.get(0)?;
    Ok(Record {
        // A non-positive seq can only be planted by hand; verify reports it, listing shows it as 0.
        seq: u64::try_from(seq).unwrap_or(0),
        time_us: r.get(1)?,
        actor: r.get(2)?,
        peer: r.get(3)?,
        sender: r.get(4)?,
        action: r.get(5)?,
        target: r.get(6)?,
        outcome: r.get(7)?,
        details: r.get(8)?,
        prev_hash: hex::encode(r.get::<_, Vec<u8>>(9)?),
        hash: hex::encode(r.get::<_, Vec<u8>>(10)?),
    })
}

/// Walks the chain from record 1 and stops at the first record that is missing, out of place, or altered.
pub fn verify(conn: &Connection) -> Result<Verification, Error> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY seq"))
        .map_err(Error::Query)?;
    let mut rows = stmt.query([]).map_err(Error::Query)?;
    let mut scratch = Vec::with_capacity(512);
    let (mut count, mut prev) = (0u64, GENESIS);
    let broken = |count: u64, prev: [u8; 32], seq: u64, problem: String| Verification {
        ok: false,
        count,
        head_hash: if count == 0 {
            String::new()
        } else {
            hex::encode(prev)
        },
        broken_seq: seq,
        problem,
    };
    while let Some(r) = rows.next().map_err(Error::Query)? {
        let expected = count + 1;
        let raw: i64 = r.get(0).map_err(Error::Query)?;
        let Ok(seq) = u64::try_from(raw) else {
            return Ok(broken(
                count,
                prev,
                expected,
                format!("a record with invalid sequence number {raw} was inserted"),
            ));
        };
        if seq != expected {
            let problem = format!("record {expected} is missing (the next stored record is {seq})");
            return Ok(broken(count, prev, expected, problem));
        }
        let text = |i: usize| {
            r.get_ref(i)
                .and_then(|v| v.as_str().map_err(Into::into))
                .map_err(Error::Query)
        };
        let fields = Fields {
            seq,
            time_us: r.get(1).map_err(Error::Query)?,
            actor: text(2)?,
            peer: text(3)?,
            sender: text(4)?,
            action: text(5)?,
            target: text(6)?,
            outcome: text(7)?,
            details: text(8)?,
        };
        let prev_hash = r
            .get_ref(9)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(Error::Query)?;
        let hash = r
            .get_ref(10)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(Error::Query)?;
        if prev_hash != prev {
            let problem = format!(
                "record {seq} does not follow record {count}: its previous-hash does not match (records were \
                 deleted, inserted or reordered here)"
            );
            return Ok(broken(count, prev, seq, problem));
        }
        let computed = chain::link(&prev, &fields, &mut scratch);
        if hash != computed {
            let problem = format!("record {seq} was altered: its content does not match its hash");
            return Ok(broken(count, prev, seq, problem));
        }
        prev = computed;
        count = seq;
    }
    Ok(Verification {
        ok: true,
        count,
        head_hash: if count == 0 {
            String::new()
        } else {
            hex::encode(prev)
        },
        broken_seq: 0,
        problem: String::new(),
    })
}

/// A chain that verifies but ends before the head this daemon committed was cut short behind its back.
pub fn check_tail(v: Verification, committed: u64) -> Verification {
    if !v.ok || v.count >= committed {
        return v;
    }
    Verification {
        ok: false,
        broken_seq: v.count + 1,
        problem: format!(
            "the log ends at record {} but {committed} records were committed: records {}..{committed} were \
             removed from the end",
            v.count,
            v.count + 1
        ),
        ..v
    }
}

fn to_seq(seq: i64) -> Result<u64, Error> {
    u64::try_from(seq).map_err(|_| Error::Row {
        seq,
        what: "negative sequence number".into(),
    })
}

fn to_hash(seq: i64, bytes: &[u8]) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| Error::Row {
        seq,
        what: format!("hash is {} bytes, not 32", bytes.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pending(i: usize) -> Pending {
        Pending {
            time_us: 1_700_000_000_000_000 + i as i64,
            actor: "root@console".into(),
            peer: "uid=0 pid=1".into(),
            sender: "uid=0 pid=1".into(),
            action: if i.is_multiple_of(2) {
                "firewall.open"
            } else {
                "ssh.key_add"
            }
            .into(),
            target: format!("tcp/{i}"),
            outcome: "allowed".into(),
            details: format!("{{\"i\":{i}}}"),
        }
    }

    fn filled(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("audit.db")).unwrap();
        let batch: Vec<Pending> = (0..n).map(pending).collect();
        store.append_batch(&batch).unwrap();
        (dir, store)
    }

    /// Tampering as an attacker with the file would: drop the triggers, then edit.
    fn tamper(store: &Store, sql: &str) {
        store
            .conn
            .execute_batch(&format!(
                "DROP TRIGGER records_append_only_update; DROP TRIGGER records_append_only_delete; {sql}"
            ))
            .unwrap();
    }

    #[test]
    fn clean_chain_verifies_with_count_and_head() {
        let (_dir, store) = filled(50);
        let v = verify(&store.conn).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(
            (v.count, v.head_hash.clone()),
            (50, hex::encode(store.head_hash()))
        );
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (dir, store) = filled(3);
        drop(store);
        let mut store = Store::open(&dir.path().join("audit.db")).unwrap();
        assert_eq!(store.len(), 3);
        let got = store.append_batch(&[pending(3)]).unwrap();
        assert_eq!(got[0].seq, 4);
        assert!(verify(&store.conn).unwrap().ok);
    }

    #[test]
    fn truncated_tail_is_caught_against_the_committed_head() {
        let (_dir, store) = filled(6);
        tamper(&store, "DELETE FROM records WHERE seq > 4;");
        let v = check_tail(verify(&store.conn).unwrap(), store.len());
        assert_eq!((v.ok, v.broken_seq, v.count), (false, 5, 4), "{v:?}");
        assert!(v.problem.contains("removed from the end"), "{}", v.problem);
        assert!(
            check_tail(verify(&store.conn).unwrap(), 4).ok,
            "nothing missing relative to a head of 4"
        );
    }

    #[test]
    fn planted_non_positive_seq_is_reported_not_an_error() {
        let (_dir, store) = filled(3);
        tamper(&store, "UPDATE records SET seq = -1 WHERE seq = 1;");
        let v = verify(&store.conn).unwrap();
        assert_eq!((v.ok, v.broken_seq), (false, 1), "{v:?}");
    }

    #[test]
    fn large_records_split_pages_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("audit.db")).unwrap();
        let big: Vec<Pending> = (0..100)
            .map(|i| Pending {
                details: format!("{{\"blob\":\"{}\"}}", "x".repeat(60_000)),
                ..pending(i)
            })
            .collect();
        store.append_batch(&big).unwrap();
        let q = Query::parse(&std::collections::HashMap::new(), 0, 1000, false).unwrap();
        let page = query(&store.conn, &q).unwrap();
        assert!(page.records.len() < 100 && page.next_cursor == page.records.last().unwrap().seq);
        let q2 = Query::parse(
            &std::collections::HashMap::new(),
            page.next_cursor,
            1000,
            false,
        )
        .unwrap();
        assert_eq!(
            page.records.len() + query(&store.conn, &q2).unwrap().records.len(),
            100
        );
    }

    #[test]
    fn triggers_refuse_update_and_delete() {
        let (_dir, store) = filled(2);
        assert!(store
            .conn
            .execute("UPDATE records SET actor = 'x' WHERE seq = 1", [])
            .is_err());
        assert!(store
            .conn
            .execute("DELETE FROM records WHERE seq = 2", [])
            .is_err());
    }

    #[test]
    fn edited_row_is_named() {
        let (_dir, store) = filled(10);
        tamper(
            &store,
            "UPDATE records SET target = 'tcp/22' WHERE seq = 4;",
        );
        let v = verify(&store.conn).unwrap();
        assert!(!v.ok);
        assert_eq!((v.broken_seq, v.count), (4, 3));
        assert!(v.problem.contains("altered"), "{}", v.problem);
    }

    #[test]
    fn deleted_row_is_named() {
        let (_dir, store) = filled(10);
        tamper(&store, "DELETE FROM records WHERE seq = 6;");
        let v = verify(&store.conn).unwrap();
        assert_eq!((v.ok, v.broken_seq), (false, 6));
        assert!(v.problem.contains("missing"), "{}", v.problem);
    }

    #[test]
    fn reordered_rows_are_named() {
        let (_dir, store) = filled(10);
        // Swap the contents of records 7 and 8, keeping the sequence numbers in place.
        tamper(
            &store,
            "UPDATE records SET seq = -7 WHERE seq = 7; UPDATE records SET seq = 7 WHERE seq = 8; \
             UPDATE records SET seq = 8 WHERE seq = -7;",
        );
        let v = verify(&store.conn).unwrap();
        assert_eq!((v.ok, v.broken_seq), (false, 7), "{v:?}");
    }

    #[test]
    fn rehashed_edit_is_caught_at_the_next_link() {
        let (_dir, store) = filled(5);
        // Edit record 2 and give it a correct hash for its new content: record 3 no longer follows it.
        let mut scratch = Vec::new();
        let prev: Vec<u8> = store
            .conn
            .query_row("SELECT hash FROM records WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        let mut p = pending(1);
        p.target = "tcp/22".into();
        let f = Fields {
            seq: 2,
            time_us: p.time_us,
            actor: &p.actor,
            peer: &p.peer,
            sender: &p.sender,
            action: &p.action,
            target: &p.target,
            outcome: &p.outcome,
            details: &p.details,
        };
        let h = chain::link(&prev.try_into().unwrap(), &f, &mut scratch);
        tamper(
            &store,
            &format!(
                "UPDATE records SET target = 'tcp/22', hash = x'{}' WHERE seq = 2;",
                hex::encode(h)
            ),
        );
        let v = verify(&store.conn).unwrap();
        assert_eq!((v.ok, v.broken_seq), (false, 3), "{v:?}");
    }

    #[test]
    fn failed_batch_leaves_head_unchanged() {
        let (_dir, mut store) = filled(2);
        let head = store.head_hash();
        // A record whose insert fails (here: the table is made read-only by a trigger) aborts the whole batch.
        store
            .conn
            .execute_batch("CREATE TRIGGER no_insert BEFORE INSERT ON records WHEN NEW.seq = 4 BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
            .unwrap();
        assert!(store.append_batch(&[pending(2), pending(3)]).is_err());
        assert_eq!((store.len(), store.head_hash()), (2, head));
        let count: i64 = store
            .conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2, "no half-applied batch");
    }
}
