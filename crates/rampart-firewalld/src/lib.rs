//! rampart-firewalld: the host firewall. It owns the nftables table `inet rampart` and nothing else — other
//! tables and the rest of the ruleset are never listed, flushed or touched.
//!
//! - The policy (drop inbound except established, loopback, essential ICMP, SSH, 80/443 and the stored rules) is
//!   rebuilt from SQLite and applied as one nft JSON transaction ([`ruleset`], [`nft`], [`engine`]).
//! - Openings expire (default 24 h) unless made permanent with a reason; expiry runs on a timer driven by the
//!   database, so overdue rules go at once after a restart, and is audited as `firewall.expire`.
//! - Lockout-prone changes (SSH ports/sources) go through [`commit_confirm`]: reverted at the deadline unless
//!   confirmed; the pending revert is stored, so it survives restarts, and `--restore` at boot reverts it.
//! - Bans live only in the kernel sets `ban4`/`ban6` with kernel timeouts: they expire with the daemon down.
//! - The table is compared with what was applied every `reconcile_interval`; a change made behind our back is
//!   undone and audited as `firewall.reconcile`.
//!
//! Records for things the daemon does on its own go through a database outbox (see [`store`]) so that boot-time
//! restores (no bus yet) and an unreachable audit log delay records rather than lose them.
//!
//! Rejected: firewalld/ufw (own the whole ruleset, string-built rules), keeping bans in SQLite (they would not
//! expire with the daemon down, and the kernel already keeps time).

pub mod commit_confirm;
pub mod engine;
mod error;
pub mod nft;
pub mod ruleset;
pub mod service;
pub mod settings;
pub mod spec;
pub mod store;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use error::Error;
use rampart_common::{bus, notify};
use rampart_interfaces::audit::{AuditProxy, NewRecord};
use rampart_interfaces::firewall::{BUS_NAME, OBJECT_PATH};
use tokio::sync::Notify;

use crate::engine::Engine;
use crate::service::{now, with_engine, FirewallService};
use crate::settings::Settings;

/// The actor of records about what the daemon did on its own.
pub const SERVICE_ACTOR: &str = "service:rampart-firewalld";

/// `--restore`: apply the database to the kernel at boot, before the network and the bus exist, then return.
/// Expired rules are dropped and a pending change is reverted (nobody confirmed it before the reboot).
pub fn restore(settings: Settings) -> Result<String, Error> {
    let mut engine = Engine::open(settings)?;
    engine.start(now(), true)?;
    Ok(engine.status_line())
}

/// Runs the daemon until `shutdown` resolves. `console_uid` overrides who counts as root on the console (tests).
pub async fn run(
    settings: Settings,
    console_uid: Option<u32>,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let reconcile_every = settings.reconcile_interval;
    let engine = tokio::task::spawn_blocking(move || -> Result<Engine, Error> {
        let mut engine = Engine::open(settings)?;
        engine.start(now(), false)?;
        Ok(engine)
    })
    .await
    .map_err(|e| Error::Thread(std::io::Error::other(e)))??;
    let engine = Arc::new(Mutex::new(engine));
    let wake = Arc::new(Notify::new());
    let conn = bus::serve(
        BUS_NAME,
        OBJECT_PATH,
        FirewallService::new(Arc::clone(&engine), Arc::clone(&wake), console_uid),
    )
    .await?;
    let audit = AuditProxy::new(&conn)
        .await
        .map_err(|e| Error::Common(rampart_common::Error::BusConnect(Box::new(e))))?;
    let status = with_engine(&engine, |e| Ok(e.status_line())).await?;
    log::info!("serving: {status}");
    notify::ready(&status);

    // The watchdog is fed only while the timer loop keeps going round.
    let last_loop = Arc::new(AtomicU64::new(now()));
    let stale_after = (reconcile_every.as_secs() * 3).max(60);
    let probe = Arc::clone(&last_loop);
    let _watchdog = notify::spawn_watchdog(move || {
        now().saturating_sub(probe.load(Ordering::Relaxed)) <= stale_after
    });

    tokio::pin!(shutdown);
    let mut next_reconcile = Instant::now() + reconcile_every;
    loop {
        last_loop.store(now(), Ordering::Relaxed);
        let reconcile = Instant::now() >= next_reconcile;
        if reconcile {
            next_reconcile = Instant::now() + reconcile_every;
        }
        let tick = with_engine(&engine, move |e| {
            let t = now();
            let expired = e.expire_due(t)?;
            for r in &expired {
                log::info!("{} expired", r.target());
            }
            if let Some(p) = e.revert_due(t, false)? {
                log::warn!("change {} was not confirmed in time: reverted", p.change_id);
            }
            if reconcile && e.reconcile(t)? {
                log::warn!("table inet rampart was changed outside rampart-firewalld: restored");
            }
            Ok((e.next_deadline()?, e.status_line()))
        })
        .await;
        let mut wait = next_reconcile.saturating_duration_since(Instant::now());
        match tick {
            Ok((deadline, status)) => {
                notify::status(&status);
                if let Some(at) = deadline {
                    wait = wait.min(until(at));
                }
            }
            Err(e) => {
                log::error!(
                    "timer work failed (retrying): {}",
                    rampart_common::error::chain(&e)
                );
                wait = wait.min(Duration::from_secs(1));
            }
        }
        if !deliver_outbox(&engine, &audit).await {
            wait = wait.min(Duration::from_secs(1));
        }
        tokio::select! {
            why = &mut shutdown => {
                log::info!("{why}: stopping");
                break;
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    notify::stopping("stopping");
    let _ = conn.release_name(BUS_NAME).await;
    Ok(())
}

/// How long until Unix second `at` (zero if past).
fn until(at: u64) -> Duration {
    (UNIX_EPOCH + Duration::from_secs(at))
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// Sends queued records to the audit log; false if some could not be delivered (retry later).
async fn deliver_outbox(engine: &Arc<Mutex<Engine>>, audit: &AuditProxy<'_>) -> bool {
    let records = match with_engine(engine, |e| e.outbox()).await {
        Ok(r) => r,
        Err(e) => {
            log::error!(
                "cannot read the audit outbox: {}",
                rampart_common::error::chain(&e)
            );
            return false;
        }
    };
    for r in records {
        let record = NewRecord {
            actor: SERVICE_ACTOR.to_owned(),
            peer: String::new(),
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: "allowed".to_owned(),
            details: r.details.clone(),
        };
        match tokio::time::timeout(rampart_common::guard::AUDIT_TIMEOUT, audit.record(&record))
            .await
        {
            Ok(Ok(_)) => {
                if let Err(e) = with_engine(engine, move |e| e.outbox_done(r.id)).await {
                    log::error!(
                        "audit record delivered but not cleared: {}",
                        rampart_common::error::chain(&e)
                    );
                    return false;
                }
            }
            Ok(Err(e)) => {
                log::warn!("audit log refused {} (will retry): {e}", r.action);
                return false;
            }
            Err(_) => {
                log::warn!("audit log did not answer (will retry)");
                return false;
            }
        }
    }
    true
}
