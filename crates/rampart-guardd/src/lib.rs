//! rampart-guardd: bans brute-force sources through rampart-firewalld, from what the journal says.
//!
//! It follows the journal (structured entries, not log files: [`rampart_common::journal`]) for sshd's lines and
//! the panel's authentication entries ([`rampart_interfaces::authlog`]), turns each into an event ([`parse`]),
//! counts failures per source in sliding windows with per-service thresholds ([`window`]), spares allowlisted
//! networks and sources of open administrator sessions ([`policy`]), and asks firewalld to ban the rest for a time
//! that grows for repeat offenders ([`bans`]). The journal cursor is saved (at most once a second, and on stop)
//! only past lines whose bans the firewall has answered, so a restart resumes exactly where it stopped and never
//! re-bans from old lines.
//!
//! Rejected: tailing `/var/log/auth.log` (no rsyslog on the image; rotation and truncation races; no trusted
//! `_UID`/`_SYSTEMD_UNIT` to tell sshd from a tenant logging as "sshd"), and banning with nft directly (only
//! firewalld touches the table; guardd holds no capability at all).

pub mod bans;
pub mod engine;
mod error;
pub mod parse;
pub mod policy;
pub mod settings;
pub mod window;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use error::Error;
use rampart_common::journal::{CursorFile, FollowOptions, Follower};
use rampart_common::{bus, notify};
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::firewall::FirewallProxy;
use tokio::sync::mpsc;

use crate::bans::{Dispatcher, Expiries};
use crate::engine::Engine;
use crate::settings::Settings;

const TICK: Duration = Duration::from_secs(1);
const ALLOWLIST_REFRESH: Duration = Duration::from_secs(60);

/// Runs the daemon until `shutdown` resolves, then waits (briefly) for bans in flight and saves the cursor.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let conn = bus::connect().await?;
    let firewall = FirewallProxy::new(&conn)
        .await
        .map_err(|source| Error::Proxy {
            interface: "org.rampart.Firewall1",
            source: Box::new(source),
        })?;
    let audit = AuditProxy::new(&conn)
        .await
        .map_err(|source| Error::Proxy {
            interface: "org.rampart.Audit1",
            source: Box::new(source),
        })?;
    let cursor_file = CursorFile::new(&settings.cursor_file);
    let resume = cursor_file.load()?;
    let mut follower = Follower::spawn(&FollowOptions {
        matches: settings.journal_matches.clone(),
        after_cursor: resume.clone(),
        directory: settings.journal_directory.clone(),
    })?;
    let mut engine = Engine::new(&settings);
    let (banned_tx, mut banned) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::spawn(firewall.clone(), banned_tx);
    let mut expiries = Expiries::default();
    let (allow_tx, mut allow_rx) = mpsc::channel::<Vec<String>>(1);
    let allow_task = tokio::spawn(refresh_allowlist(firewall.clone(), allow_tx));

    let progress = Arc::new(AtomicU64::new(now_secs()));
    let probe = Arc::clone(&progress);
    let _watchdog = notify::spawn_watchdog(move || {
        now_secs().saturating_sub(probe.load(Ordering::Relaxed)) < 20
    });
    let resumed = if resume.is_some() {
        "resuming after the saved cursor"
    } else {
        "from the end of the journal"
    };
    log::info!("following the journal {resumed}");
    notify::ready(&format!("following the journal {resumed}"));

    let mut seq: u64 = 0;
    let mut last_cursor = resume.clone();
    let mut saved = resume;
    let mut tick = tokio::time::interval(TICK);
    let mut status_at = 0u64;
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            why = &mut shutdown => {
                log::info!("{why}: stopping");
                break Ok(());
            }
            // Follower::next is a channel receive from the reader thread: cancel-safe in select!.
            item = follower.next() => match item {
                Ok(Some(entry)) => {
                    seq += 1;
                    if let Some(order) = engine.handle(&entry) {
                        dispatcher.send(seq, last_cursor.clone(), order);
                    }
                    last_cursor = Some(entry.cursor);
                }
                Err(e) => break Err(Error::Common(e)),
                Ok(None) => break Err(Error::ReaderGone),
            },
            Some(b) = banned.recv() => expiries.add(&b),
            Some(list) = allow_rx.recv() => engine.allowlist.set_firewall(list),
            _ = tick.tick() => {
                progress.store(now_secs(), Ordering::Relaxed);
                save_cursor(&cursor_file, &dispatcher, &last_cursor, &mut saved);
                for (source, seconds, offence) in expiries.due(tokio::time::Instant::now()) {
                    bans::audit_unban(&audit, source, seconds, offence);
                }
                if now_secs() >= status_at + 10 {
                    status_at = now_secs();
                    let c = engine.counters;
                    notify::status(&format!(
                        "{} entries, {} failures, {} bans ({} active, {} in flight), {} sources tracked, {} admin sessions",
                        c.entries, c.failures, c.bans, expiries.len(), dispatcher.pending(), engine.tracked(), engine.open_sessions()
                    ));
                }
            }
        }
    };
    notify::stopping("stopping: waiting for bans in flight");
    drop(follower); // stops the reader thread
    allow_task.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while dispatcher.pending() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    save_cursor(&cursor_file, &dispatcher, &last_cursor, &mut saved);
    result
}

/// Saves the newest cursor that is safe (see [`bans`]) if it changed.
fn save_cursor(
    file: &CursorFile,
    dispatcher: &Dispatcher,
    last: &Option<String>,
    saved: &mut Option<String>,
) {
    let safe = dispatcher.safe_cursor().unwrap_or_else(|| last.clone());
    if let Some(cursor) = safe {
        if saved.as_deref() != Some(cursor.as_str()) {
            match file.save(&cursor) {
                Ok(()) => *saved = Some(cursor),
                Err(e) => log::error!("{}", rampart_common::error::chain(&e)),
            }
        }
    }
}

/// Reads firewalld's allowlist now and every minute; firewalld being absent is logged, not fatal.
async fn refresh_allowlist(firewall: FirewallProxy<'static>, tx: mpsc::Sender<Vec<String>>) {
    let mut tick = tokio::time::interval(ALLOWLIST_REFRESH);
    loop {
        tick.tick().await;
        match tokio::time::timeout(Duration::from_secs(5), firewall.allowlist()).await {
            Ok(Ok(list)) => {
                if tx
                    .send(list.into_iter().map(|a| a.cidr).collect())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Err(e)) => log::warn!(
                "cannot read the firewall's allowlist: {}",
                rampart_interfaces::error::message(&e)
            ),
            Err(_) => log::warn!("cannot read the firewall's allowlist: no answer within 5 s"),
        }
    }
}

use rampart_common::clock::now as now_secs;
