//! `org.rampart.Audit1`: the append-only, hash-chained audit log served by rampart-auditd.
//!
//! Records are numbered from 1 without gaps. Each record's `hash` is SHA-256 over the previous record's hash
//! (32 zero bytes for record 1) followed by the record's canonical bytes (see rampart-auditd's `chain` module), so
//! editing, deleting or reordering any record breaks every later link.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Audit1";
pub const OBJECT_PATH: &str = "/org/rampart/Audit1";
pub const INTERFACE: &str = "org.rampart.Audit1";

/// Filter keys `Query` understands; anything else is refused with `InvalidArgument`.
pub const FILTER_KEYS: &[&str] = &[
    "actor", "action", "target", "outcome", "peer", "since", "until",
];
/// Largest page `Query` returns.
pub const MAX_PAGE: u32 = 1000;

/// What happened to the action being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Authorized; the action is about to run (or ran).
    Allowed,
    /// Refused by authorization.
    Denied,
    /// Authorized, attempted, and failed; nothing was half-applied.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Allowed, Outcome::Denied, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!("unknown outcome {s:?}; expected one of: allowed, denied, failed")
            })
    }
}

/// A record as a caller submits it. The daemon adds the sequence number, time, the submitting connection's
/// credentials (`sender`) and the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct NewRecord {
    /// The principal that acted, e.g. `root@console` or an account name.
    pub actor: String,
    /// Where the actor came from: `uid=0 pid=42`, `ip=192.0.2.7`. Empty: the daemon fills in the bus caller.
    pub peer: String,
    /// Dotted permission-style name, e.g. `firewall.open`.
    pub action: String,
    /// What the action applied to, e.g. `tcp/8080`.
    pub target: String,
    /// `allowed`, `denied` or `failed`.
    pub outcome: String,
    /// A JSON object with anything else worth keeping; `{}` when there is nothing.
    pub details: String,
}

/// A stored record, as `Query` returns it. Hashes are lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Record {
    pub seq: u64,
    /// Microseconds since the Unix epoch (UTC) when auditd received the record. `seq` is the order; two
    /// records submitted at the same moment may carry times slightly out of `seq` order.
    pub time_us: i64,
    pub actor: String,
    pub peer: String,
    /// Credentials of the D-Bus connection that submitted the record, e.g. `uid=0 pid=42`.
    pub sender: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// Canonical JSON object (sorted keys, no spaces).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The reply to `Record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
}

/// One page of `Query` results; `next_cursor` is 0 when there is nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Page {
    pub records: Vec<Record>,
    pub next_cursor: u64,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Verification {
    /// True when every record links to the one before it and matches its own hash.
    pub ok: bool,
    /// Records checked (all of them when `ok`; those before the break otherwise).
    pub count: u64,
    /// Hash of the last good record (hex); empty for an empty log.
    pub head_hash: String,
    /// Sequence number of the first broken record; 0 when `ok`.
    pub broken_seq: u64,
    /// What is wrong with `broken_seq`, in words; empty when `ok`.
    pub problem: String,
}

#[zbus::proxy(
    interface = "org.rampart.Audit1",
    default_service = "org.rampart.Audit1",
    default_path = "/org/rampart/Audit1",
    gen_blocking = false
)]
pub trait Audit {
    /// Appends one record; returns only after it is durable on disk.
    fn record(&self, record: &NewRecord) -> zbus::Result<Appended>;

    /// Records matching all `filters` (see [`FILTER_KEYS`]; `action` accepts a trailing `*` as a prefix match;
    /// `since`/`until` are RFC 3339 times). Paging is by sequence number: pass 0, then `next_cursor`.
    fn query(
        &self,
        filters: HashMap<String, String>,
        cursor: u64,
        limit: u32,
        newest_first: bool,
    ) -> zbus::Result<Page>;

    /// Walks the whole chain and reports the first broken link, or ok + count + head hash.
    fn verify(&self) -> zbus::Result<Verification>;
}
