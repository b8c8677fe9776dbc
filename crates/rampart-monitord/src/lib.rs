//! rampart-monitord: per-tenant network and process monitoring with eBPF.
//!
//! One set of programs (`bpf/monitor.bpf.c`) is attached once, at `tenant.slice`: cgroup programs run for every
//! descendant cgroup, so a new tenant costs a map entry, not a new attachment, and the per-packet cost does not
//! grow with the number of tenants (measured in `make bench`: 1 and 100 tenant slices). Rejected: attaching per
//! tenant slice (a program run per level of nesting, and attach/detach on every tenant change) and systemd's
//! `IPAccounting=` (bytes and packets only, per unit, no ports or execs; `make bench` compares its cost).
//!
//! - Counters per tenant (bytes/packets in and out, connections, execs) are per-CPU map entries that the programs
//!   update in place; userspace only reads them. Totals survive restarts: the [`engine`] checkpoints them into
//!   SQLite and adds the kernel's fresh counts to the saved base.
//! - Events cross the ring buffer only for first-seen things (a listening port, an outbound port, a binary); each
//!   carries a per-CPU sequence number and every failed reservation is counted by kind ([`events`]).
//! - Alerts (a new listening port, an exec from a tmpfs or world-writable place or of a deleted file, a first
//!   connection to a watched port, CPU held at the limit) are stored, written to the journal with a fixed
//!   `MESSAGE_ID`, signalled on the bus (`AlertRaised`) and delivered to the audit log as
//!   `service:rampart-monitord` — retried from the database until the audit log has them.
//! - Enforcement per tenant (deny outbound ports, listen only on allowed ports) is off by default; setting it is
//!   authorized and audited.

pub mod bpf;
pub mod cgroups;
pub mod cpu;
pub mod engine;
mod error;
pub mod events;
pub mod prometheus;
pub mod service;
pub mod settings;
pub mod store;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::Error;
use futures_lite::StreamExt;
use rampart_common::{bus, clock::now, notify};
use rampart_interfaces::audit::{AuditProxy, NewRecord};
use rampart_interfaces::monitor::{Alert, ALERT_MESSAGE_ID, BUS_NAME, OBJECT_PATH};
use rampart_interfaces::tenant::TenantProxy;
use tokio::sync::mpsc;
use zbus::object_server::SignalEmitter;

use crate::engine::Engine;
use crate::events::Reader;
use crate::service::{with_engine, MonitorService};
use crate::settings::Settings;

/// The actor of everything the daemon records on its own.
pub const SERVICE_ACTOR: &str = "service:rampart-monitord";
/// The audit action of an alert.
pub const ALERT_ACTION: &str = "monitor.alert";
/// How often the tenants and their plan limits are asked of rampart-tenantd (limits are used where a slice's
/// cpu.max cannot be read; the list tells purged tenants, whose kept state is forgotten), besides at once on its
/// `Changed` signal.
const PLANS_EVERY: Duration = Duration::from_secs(30);

fn chain(e: &Error) -> String {
    rampart_common::error::chain(e)
}

/// Runs the daemon until `shutdown` resolves. `console_uid` overrides who counts as root on the console (tests).
pub async fn run(
    settings: Settings,
    console_uid: Option<u32>,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let (scan_every, cpu_every, checkpoint_every) = (
        settings.scan_interval,
        settings.cpu_sample,
        settings.checkpoint,
    );
    let engine = tokio::task::spawn_blocking(move || -> Result<Engine, Error> {
        let mut engine = Engine::open(settings)?;
        engine.scan()?;
        Ok(engine)
    })
    .await
    .map_err(|e| Error::Thread(std::io::Error::other(e)))??;
    let (tx, mut events) = mpsc::unbounded_channel();
    let reader = Reader::start(engine.programs().events_map(), move |e| {
        let _ = tx.send(e);
    })?;
    let engine = Arc::new(Mutex::new(engine));
    let conn = bus::serve(
        BUS_NAME,
        OBJECT_PATH,
        MonitorService::new(Arc::clone(&engine), Arc::clone(&reader.stats), console_uid),
    )
    .await?;
    let bus_err = |e: zbus::Error| Error::Common(rampart_common::Error::BusConnect(Box::new(e)));
    let audit = AuditProxy::new(&conn).await.map_err(bus_err)?;
    let tenants = TenantProxy::new(&conn).await.map_err(bus_err)?;
    let mut changed = tenants.receive_changed().await.map_err(bus_err)?;
    let emitter = SignalEmitter::new(&conn, OBJECT_PATH)
        .map_err(bus_err)?
        .into_owned();
    let status = with_engine(&engine, |e| Ok(status_line(e))).await?;
    log::info!("serving: {status}");
    notify::ready(&status);

    // The watchdog is fed only while the main loop keeps going round.
    let last_loop = Arc::new(AtomicU64::new(now()));
    let probe = Arc::clone(&last_loop);
    let stale_after = scan_every.as_secs().max(cpu_every.as_secs()) * 3 + 30;
    let _watchdog = notify::spawn_watchdog(move || {
        now().saturating_sub(probe.load(Ordering::Relaxed)) <= stale_after
    });

    let started = Instant::now();
    let mut scan = tokio::time::interval(scan_every);
    let mut cpu = tokio::time::interval(cpu_every);
    let mut checkpoint = tokio::time::interval(checkpoint_every);
    let mut plans = tokio::time::interval(PLANS_EVERY);
    tokio::pin!(shutdown);
    loop {
        last_loop.store(now(), Ordering::Relaxed);
        let mut alerts = Vec::new();
        tokio::select! {
            why = &mut shutdown => {
                log::info!("{why}: stopping");
                break;
            }
            Some(event) = events.recv() => {
                let t = now();
                match with_engine(&engine, move |e| e.handle(&event, t)).await {
                    Ok(Some(a)) => alerts.push(a),
                    Ok(None) => {}
                    Err(e) => log::error!("event not recorded: {}", chain(&e)),
                }
            }
            _ = scan.tick() => {
                match with_engine(&engine, |e| Ok((e.scan()?, status_line(e)))).await {
                    Ok((changes, status)) => {
                        for t in &changes.added { log::info!("counting tenant {t}"); }
                        for t in &changes.removed { log::info!("tenant {t}'s slice is gone; its counts are kept"); }
                        notify::status(&status);
                    }
                    Err(e) => log::error!("tenant scan failed (retrying): {}", chain(&e)),
                }
            }
            _ = cpu.tick() => {
                let (usec, t) = (u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), now());
                match with_engine(&engine, move |e| Ok(e.cpu_tick(usec, t))).await {
                    Ok(raised) => alerts.extend(raised),
                    Err(e) => log::error!("CPU sample failed: {}", chain(&e)),
                }
            }
            _ = checkpoint.tick() => {
                let t = now();
                if let Err(e) = with_engine(&engine, move |e| e.checkpoint(t)).await {
                    log::error!("checkpoint failed (retrying): {}", chain(&e));
                }
            }
            Some(_) = changed.next() => {
                // A tenant was created, changed or purged: ask for the list now rather than at the next tick, so
                // a purged tenant is forgotten before a new one of its name can start.
                plans.reset_immediately();
            }
            _ = plans.tick() => {
                if let Some((known, limits)) = known_tenants(&tenants).await {
                    let forgotten = with_engine(&engine, move |e| {
                        e.set_plan_limits(limits);
                        e.reconcile(&known)
                    })
                    .await;
                    match forgotten {
                        Ok(names) => {
                            for t in names { log::info!("tenant {t} was purged: forgot its totals, seen ports and binaries, and enforcement"); }
                        }
                        Err(e) => log::error!("purged tenants not forgotten (retrying): {}", chain(&e)),
                    }
                }
            }
        }
        for alert in alerts {
            raise(&engine, &emitter, alert).await;
        }
        deliver_alerts(&engine, &audit).await;
    }
    notify::stopping("stopping: saving the counters");
    let t = now();
    if let Err(e) = with_engine(&engine, move |e| e.checkpoint(t)).await {
        log::error!("final checkpoint failed: {}", chain(&e));
    }
    drop(reader);
    let _ = conn.release_name(BUS_NAME).await;
    Ok(())
}

fn status_line(e: &Engine) -> String {
    format!(
        "watching {} tenant(s) at {}",
        e.live().len(),
        e.parent().display()
    )
}

/// Stores an alert, then tells the journal and the bus. The audit log gets it from the database (`deliver_alerts`).
async fn raise(engine: &Arc<Mutex<Engine>>, emitter: &SignalEmitter<'static>, alert: Alert) {
    let alert = match with_engine(engine, move |e| e.store_alert(alert)).await {
        Ok(a) => a,
        Err(e) => {
            log::error!("alert not stored: {}", chain(&e));
            return;
        }
    };
    log::warn!(
        MESSAGE_ID = ALERT_MESSAGE_ID,
        RAMPART_TENANT = alert.tenant.as_str(),
        RAMPART_ALERT = alert.kind.as_str(),
        RAMPART_ALERT_ID = alert.id;
        "tenant {}: {}",
        alert.tenant,
        alert.message
    );
    if let Err(e) = MonitorService::alert_raised(emitter, alert).await {
        log::warn!("AlertRaised signal not sent: {e}");
    }
}

/// Sends stored alerts the audit log does not have yet; what fails is retried after the next loop.
async fn deliver_alerts(engine: &Arc<Mutex<Engine>>, audit: &AuditProxy<'_>) {
    let pending = match with_engine(engine, |e| e.unaudited()).await {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot read undelivered alerts: {}", chain(&e));
            return;
        }
    };
    for a in pending {
        let record = NewRecord {
            actor: SERVICE_ACTOR.to_owned(),
            peer: String::new(),
            action: ALERT_ACTION.to_owned(),
            target: format!("tenant/{}", a.tenant),
            outcome: "allowed".to_owned(),
            details: serde_json::json!({
                "alert": a.id, "kind": a.kind, "message": a.message, "pid": a.pid, "program": a.program,
                "port": a.port,
            })
            .to_string(),
        };
        match tokio::time::timeout(rampart_common::guard::AUDIT_TIMEOUT, audit.record(&record))
            .await
        {
            Ok(Ok(_)) => {
                let id = a.id;
                if let Err(e) = with_engine(engine, move |e| e.mark_audited(id)).await {
                    log::error!("alert {id} audited but not marked: {}", chain(&e));
                    return;
                }
            }
            Ok(Err(e)) => {
                log::warn!("audit log refused alert {} (will retry): {e}", a.id);
                return;
            }
            Err(_) => {
                log::warn!("audit log did not answer (will retry)");
                return;
            }
        }
    }
}

/// Every tenant rampart-tenantd knows, as (name, created_at), and the CPU limit of each one's plan (None when it
/// cannot be asked).
async fn known_tenants(
    tenants: &TenantProxy<'_>,
) -> Option<(Vec<(String, u64)>, HashMap<String, u32>)> {
    let ask = async { Ok::<_, zbus::Error>((tenants.list().await?, tenants.plans().await?)) };
    match tokio::time::timeout(Duration::from_secs(5), ask).await {
        Ok(Ok((list, plans))) => {
            let cpu: HashMap<String, u32> =
                plans.into_iter().map(|p| (p.name, p.cpu_percent)).collect();
            let limits = list
                .iter()
                .filter_map(|t| Some((t.name.clone(), *cpu.get(&t.plan)?)))
                .collect();
            Some((
                list.into_iter().map(|t| (t.name, t.created_at)).collect(),
                limits,
            ))
        }
        Ok(Err(e)) => {
            log::debug!("tenants not read from rampart-tenantd: {e}");
            None
        }
        Err(_) => None,
    }
}
