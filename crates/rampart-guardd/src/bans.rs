//! Issuing bans without blocking the journal loop, and auditing their end.
//!
//! Orders go to a few worker tasks chosen by hashing the source, so two orders for one source are issued in order
//! while different sources proceed in parallel. Each order carries the cursor of the entry *before* the one that
//! caused it; until the firewall has answered, the saved cursor never moves past that point, so a crash re-reads
//! the line and bans again rather than losing the ban.
//!
//! firewalld audits every ban it makes (`firewall.ban`). A ban ends in the kernel on its own (`timeout` element),
//! with nobody to audit it, so guardd writes a `guard.unban` record when the time has passed. While guardd is down
//! bans still expire; those ends are not recorded (the ban record holds its duration).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_interfaces::audit::{AuditProxy, NewRecord};
use rampart_interfaces::firewall::FirewallProxy;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::BanOrder;

/// The principal guardd acts as (see rampart_common::guard::SERVICES).
pub const PRINCIPAL: &str = "service:rampart-guardd";
const WORKERS: usize = 4;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;

/// Bans not yet answered, by entry sequence number, with the cursor of the entry before.
pub type InFlight = Arc<Mutex<BTreeMap<u64, Option<String>>>>;

#[derive(Debug)]
struct Job {
    seq: u64,
    order: BanOrder,
}

/// A ban the firewall confirmed, for the unban record.
#[derive(Debug)]
pub struct Banned {
    pub source: IpAddr,
    pub seconds: u64,
    pub offence: u32,
}

#[derive(Debug, Clone)]
pub struct Dispatcher {
    workers: Vec<mpsc::UnboundedSender<Job>>,
    in_flight: InFlight,
}

impl Dispatcher {
    /// Starts the workers; confirmed bans are reported on `banned`.
    pub fn spawn(
        firewall: FirewallProxy<'static>,
        banned: mpsc::UnboundedSender<Banned>,
    ) -> Dispatcher {
        let in_flight: InFlight = Arc::default();
        let workers = (0..WORKERS)
            .map(|_| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
                let firewall = firewall.clone();
                let in_flight = Arc::clone(&in_flight);
                let banned = banned.clone();
                tokio::spawn(async move {
                    while let Some(job) = rx.recv().await {
                        if let Some(b) = issue(&firewall, &job.order).await {
                            let _ = banned.send(b);
                        }
                        if let Ok(mut m) = in_flight.lock() {
                            m.remove(&job.seq);
                        }
                    }
                });
                tx
            })
            .collect();
        Dispatcher { workers, in_flight }
    }

    /// Queues `order`, caused by entry `seq`; `cursor_before` is the cursor of the entry before it.
    pub fn send(&self, seq: u64, cursor_before: Option<String>, order: BanOrder) {
        if let Ok(mut m) = self.in_flight.lock() {
            m.insert(seq, cursor_before);
        }
        let mut h = DefaultHasher::new();
        order.source.hash(&mut h);
        let i = (h.finish() % self.workers.len() as u64) as usize;
        if let Some(w) = self.workers.get(i) {
            if w.send(Job { seq, order }).is_err() {
                log::error!("ban worker {i} is gone");
            }
        }
    }

    /// The cursor that is safe to save: `None` in the outer option when nothing is in flight (the caller's last
    /// cursor is safe), else the cursor before the oldest unanswered ban.
    pub fn safe_cursor(&self) -> Option<Option<String>> {
        self.in_flight
            .lock()
            .ok()
            .and_then(|m| m.first_key_value().map(|(_, c)| c.clone()))
    }

    pub fn pending(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

async fn issue(firewall: &FirewallProxy<'static>, order: &BanOrder) -> Option<Banned> {
    let addr = order.source.to_string();
    let reason = order.reason();
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(CALL_TIMEOUT, firewall.ban("", &addr, order.seconds, &reason)).await {
            Ok(Ok(true)) => {
                log::info!(
                    RAMPART_GUARD_SOURCE = addr.as_str(),
                    RAMPART_GUARD_SECONDS = order.seconds;
                    "banned {addr} for {} s: {reason}", order.seconds
                );
                return Some(Banned {
                    source: order.source,
                    seconds: order.seconds,
                    offence: order.offence,
                });
            }
            Ok(Ok(false)) => {
                log::info!("firewall did not ban {addr}: it is on the firewall's allowlist");
                return None;
            }
            Ok(Err(zbus::Error::MethodError(name, text, _)))
                if !name.as_str().ends_with(".Failed") =>
            {
                log::error!(
                    "firewall refused to ban {addr}: {} ({name})",
                    text.unwrap_or_default()
                );
                return None;
            }
            Ok(Err(e)) => log::warn!(
                "ban {addr} attempt {attempt}/{ATTEMPTS} failed: {}",
                rampart_interfaces::error::message(&e)
            ),
            Err(_) => log::warn!(
                "ban {addr} attempt {attempt}/{ATTEMPTS}: rampart-firewalld did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
    log::error!("giving up banning {addr} after {ATTEMPTS} attempts; check `systemctl status rampart-firewalld`");
    None
}

/// Bans guardd made that are still running, for the `guard.unban` record when they end.
#[derive(Debug, Default)]
pub struct Expiries {
    by_source: HashMap<IpAddr, (Instant, u64, u32)>,
}

impl Expiries {
    pub fn add(&mut self, b: &Banned) {
        let end = Instant::now() + Duration::from_secs(b.seconds);
        let entry = self
            .by_source
            .entry(b.source)
            .or_insert((end, b.seconds, b.offence));
        // The firewall extends a ban to the later expiry; so does the record.
        if end >= entry.0 {
            *entry = (end, b.seconds, b.offence);
        }
    }

    /// Removes and returns the bans that have ended.
    pub fn due(&mut self, now: Instant) -> Vec<(IpAddr, u64, u32)> {
        let ended: Vec<IpAddr> = self
            .by_source
            .iter()
            .filter(|(_, (end, _, _))| *end <= now)
            .map(|(ip, _)| *ip)
            .collect();
        ended
            .into_iter()
            .filter_map(|ip| self.by_source.remove(&ip).map(|(_, s, o)| (ip, s, o)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty()
    }
}

/// Writes the `guard.unban` audit record for a ban that ran out (in its own task: the loop never waits on it).
pub fn audit_unban(audit: &AuditProxy<'static>, source: IpAddr, seconds: u64, offence: u32) {
    let audit = audit.clone();
    tokio::spawn(async move {
        let record = NewRecord {
            actor: PRINCIPAL.to_owned(),
            peer: String::new(),
            action: "guard.unban".to_owned(),
            target: source.to_string(),
            outcome: "allowed".to_owned(),
            details:
                json!({ "reason": "ban time elapsed", "seconds": seconds, "offence": offence })
                    .to_string(),
        };
        match tokio::time::timeout(CALL_TIMEOUT, audit.record(&record)).await {
            Ok(Ok(_)) => log::info!("ban of {source} ended after {seconds} s"),
            Ok(Err(e)) => log::error!(
                "could not audit the end of the ban of {source}: {}",
                rampart_interfaces::error::message(&e)
            ),
            Err(_) => log::error!(
                "could not audit the end of the ban of {source}: rampart-auditd did not answer"
            ),
        }
    });
}
