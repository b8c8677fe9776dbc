//! rampart-auditd: Rampart's audit log. Every action any Rampart daemon takes — and every refusal — is recorded
//! here before it happens (see rampart_common::guard), in an append-only SQLite table whose records form a SHA-256
//! hash chain ([`chain`]), mirrored to the journal with a stable `MESSAGE_ID` ([`journal`]).
//!
//! Durability: records are committed by one writer thread in batches; a caller is answered only after the
//! transaction holding its record committed with `synchronous=FULL` in WAL mode, i.e. after fsync ([`writer`]).
//!
//! Rejected designs: a plain append-only file (no indexed queries; partial writes at power loss need their own
//! recovery), per-record signatures (a key on the same machine protects nothing the chain does not), and letting
//! each daemon write its own log (no single order, no single head to compare).

pub mod chain;
mod error;
pub mod journal;
pub mod query;
pub mod service;
pub mod settings;
pub mod store;
pub mod writer;

use std::future::Future;

pub use error::Error;
use rampart_common::{bus, notify};
use rampart_interfaces::audit::{BUS_NAME, OBJECT_PATH};

use crate::service::AuditService;
use crate::settings::Settings;
use crate::store::Store;
use crate::writer::Writer;

/// Runs the daemon until `shutdown` resolves, then finishes queued records and returns.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let path = settings.database.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .map_err(|e| Error::Thread(std::io::Error::other(e)))??;
    let (count, head) = (store.len(), hex::encode(store.head_hash()));
    let (writer, thread) = Writer::spawn(store, settings.max_batch, true)?;
    let conn = bus::serve(
        BUS_NAME,
        OBJECT_PATH,
        AuditService::new(writer.clone(), settings.database.clone()),
    )
    .await?;
    let status = format!(
        "serving {count} records, head {}",
        head.get(..16).unwrap_or(&head)
    );
    log::info!("{status} from {}", settings.database.display());
    notify::ready(&status);
    let probe = writer.clone();
    let _watchdog = notify::spawn_watchdog(move || probe.is_healthy());

    let why = shutdown.await;
    log::info!("{why}: stopping");
    notify::stopping("stopping: finishing queued records");
    let _ = conn.release_name(BUS_NAME).await;
    writer.stop().await;
    if !matches!(
        tokio::task::spawn_blocking(move || thread.join()).await,
        Ok(Ok(()))
    ) {
        log::error!("the writer thread ended abnormally");
    }
    drop(conn);
    Ok(())
}
