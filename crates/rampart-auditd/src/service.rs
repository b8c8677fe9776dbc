//! The `org.rampart.Audit1` object: arguments are parsed and bounded here, at the boundary; storage is elsewhere.
//!
//! `Record` is not guarded by authorize → audit → act (it *is* the audit); who may call it is decided by the bus
//! policy (root and Rampart daemons), and the submitting connection's credentials are stored with every record
//! so that a forged `actor` is still traceable to the process that sent it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use rampart_common::bus::Caller;
use rampart_interfaces::audit::{Appended, NewRecord, Outcome, Page, Verification};
use rampart_interfaces::Error as BusError;
use zbus::message::Header;
use zbus::Connection;

use crate::chain::canonical_details;
use crate::query::{micros, Query};
use crate::store::{self, Pending};
use crate::writer::Writer;

/// Largest accepted field sizes, in bytes.
const MAX_SHORT: usize = 256;
const MAX_TARGET: usize = 1024;
const MAX_DETAILS: usize = 64 * 1024;
/// Sender descriptions cached per unique bus name (never reused while the bus runs).
const SENDER_CACHE: usize = 4096;
/// Queries and verifications running at once; more wait. Each holds a read snapshot (which delays WAL
/// checkpoints) and a blocking thread, so a busy reader (the web tier) cannot starve the writer.
const MAX_READERS: usize = 4;

#[derive(Debug)]
pub struct AuditService {
    writer: Writer,
    database: PathBuf,
    senders: Mutex<HashMap<String, String>>,
    readers: tokio::sync::Semaphore,
}

impl AuditService {
    pub fn new(writer: Writer, database: PathBuf) -> AuditService {
        AuditService {
            writer,
            database,
            senders: Mutex::new(HashMap::new()),
            readers: tokio::sync::Semaphore::new(MAX_READERS),
        }
    }

    async fn sender(&self, conn: &Connection, header: &Header<'_>) -> Result<String, BusError> {
        let name = header.sender().map(|s| s.to_string()).unwrap_or_default();
        if let Some(known) = self.senders.lock().ok().and_then(|m| m.get(&name).cloned()) {
            return Ok(known);
        }
        let caller = Caller::of(conn, header)
            .await
            .map_err(|e| BusError::Failed(format!("cannot identify the caller on the bus: {e}")))?;
        let text = caller.describe();
        if let Ok(mut map) = self.senders.lock() {
            if map.len() >= SENDER_CACHE {
                map.clear();
            }
            map.insert(name, text.clone());
        }
        Ok(text)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, crate::Error> + Send + 'static,
    ) -> Result<T, BusError> {
        let _permit = self
            .readers
            .acquire()
            .await
            .map_err(|e| BusError::Failed(format!("reader pool closed: {e}")))?;
        let path = self.database.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rampart_common::db::open_read_only(&path).map_err(crate::Error::from)?;
            f(&conn)
        })
        .await
        .map_err(|e| BusError::Failed(format!("reader task failed: {e}")))?
        .map_err(|e| BusError::Failed(rampart_common::error::chain(&e)))
    }
}

#[zbus::interface(name = "org.rampart.Audit1")]
impl AuditService {
    async fn record(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        record: NewRecord,
    ) -> Result<Appended, BusError> {
        let sender = self.sender(conn, &header).await?;
        let pending = validate(record, sender, micros(SystemTime::now()))
            .map_err(BusError::InvalidArgument)?;
        self.writer
            .append(pending)
            .await
            .map_err(|e| BusError::Failed(format!("record not stored: {e}")))
    }

    async fn query(
        &self,
        filters: HashMap<String, String>,
        cursor: u64,
        limit: u32,
        newest_first: bool,
    ) -> Result<Page, BusError> {
        let q = Query::parse(&filters, cursor, limit, newest_first)
            .map_err(BusError::InvalidArgument)?;
        self.read(move |conn| store::query(conn, &q)).await
    }

    async fn verify(&self) -> Result<Verification, BusError> {
        // Read the head this daemon committed before the snapshot starts: the snapshot holds at least that many.
        let committed = self.writer.committed();
        let v = self.read(store::verify).await?;
        Ok(store::check_tail(v, committed))
    }
}

/// Checks and normalizes a submitted record. Single-line fields refuse control characters (they would forge
/// lines in a terminal or a log viewer); `details` must be a JSON object and is stored canonical.
pub fn validate(r: NewRecord, sender: String, time_us: i64) -> Result<Pending, String> {
    let line = |name: &str, value: &str, max: usize, required: bool| -> Result<(), String> {
        if required && value.is_empty() {
            return Err(format!("{name} is empty"));
        }
        if value.len() > max {
            return Err(format!(
                "{name} is {} bytes; the limit is {max}",
                value.len()
            ));
        }
        if value.chars().any(is_invisible) {
            return Err(format!(
                "{name} contains control characters or invisible formatting characters"
            ));
        }
        Ok(())
    };
    line("actor", &r.actor, MAX_SHORT, true)?;
    line("peer", &r.peer, MAX_SHORT, false)?;
    line("action", &r.action, MAX_SHORT, true)?;
    line("target", &r.target, MAX_TARGET, false)?;
    if !r
        .action
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        return Err(format!(
            "action {:?} must be lowercase letters, digits and . _ - (e.g. firewall.open)",
            r.action
        ));
    }
    let outcome: Outcome = r.outcome.parse()?;
    if r.details.len() > MAX_DETAILS {
        return Err(format!(
            "details is {} bytes; the limit is {MAX_DETAILS}",
            r.details.len()
        ));
    }
    let details = canonical_details(&r.details)?;
    let peer = if r.peer.is_empty() {
        sender.clone()
    } else {
        r.peer
    };
    Ok(Pending {
        time_us,
        actor: r.actor,
        peer,
        sender,
        action: r.action,
        target: r.target,
        outcome: outcome.as_str().to_owned(),
        details,
    })
}

/// Characters that let a field forge or hide text on a terminal or web page: C0/C1 controls, zero-width and
/// bidirectional formatting characters, line/paragraph separators, and the BOM.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> NewRecord {
        NewRecord {
            actor: "root@console".into(),
            peer: String::new(),
            action: "firewall.open".into(),
            target: "tcp/8080".into(),
            outcome: "allowed".into(),
            details: "{\"b\":1,\"a\":2}".into(),
        }
    }

    #[test]
    fn fills_peer_from_sender_and_canonicalizes_details() {
        let p = validate(rec(), "uid=0 pid=9".into(), 5).unwrap();
        assert_eq!(
            (p.peer.as_str(), p.details.as_str()),
            ("uid=0 pid=9", "{\"a\":2,\"b\":1}")
        );
    }

    #[test]
    fn refuses_bad_fields_with_the_field_name() {
        type Mutation = fn(&mut NewRecord);
        let cases: Vec<(Mutation, &str)> = vec![
            (|r| r.actor.clear(), "actor is empty"),
            (|r| r.actor = "a\nroot".into(), "control"),
            (|r| r.target = "tcp/\u{202E}22".into(), "invisible"),
            (|r| r.action = "Firewall Open".into(), "lowercase"),
            (|r| r.outcome = "ok".into(), "unknown outcome"),
            (|r| r.details = "{not json".into(), "not valid JSON"),
            (|r| r.details = "\"x\"".into(), "JSON object"),
            (|r| r.target = "x".repeat(MAX_TARGET + 1), "limit"),
        ];
        for (mutate, want) in cases {
            let mut r = rec();
            mutate(&mut r);
            let err = validate(r, String::new(), 0).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
