//! The daemon's lifetime: open the updater, publish `org.rampart.Update1`, tell systemd, reboot inside the
//! maintenance window when an installed update waits for it, stop on the shutdown future.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rampart_common::guard::{Action, Guard};
use rampart_common::notify;
use rampart_interfaces::audit::Outcome;
use rampart_interfaces::update::{BUS_NAME, OBJECT_PATH};
use semver::Version;

use crate::reboot::{Logind, Reboot};
use crate::service::UpdateService;
use crate::settings::Settings;
use crate::updater::Updater;
use crate::Error;

/// How often the maintenance window and a pending blessing are looked at.
pub const TICK: Duration = Duration::from_secs(30);

/// Who the audit log names for what the daemon does on its own (a boot's outcome, a reboot in the window).
pub const PRINCIPAL: &str = "service:rampart-updated";

/// Audits what the daemon decided on its own: `update.trial` (running a new version before its blessing),
/// `update.blessed`, `update.failed` (back on the old slot, never retried), `update.reboot` (the window opened).
async fn audit(guard: &Guard, permission: &str, version: &str, details: serde_json::Value) {
    let action = Action {
        permission,
        target: version,
        details,
    };
    if let Err(e) = guard
        .record_event(None, PRINCIPAL, action, Outcome::Allowed)
        .await
    {
        log::error!("could not audit {permission} of {version}: {e}");
    }
}

async fn audit_outcomes(guard: &Guard, updater: &Updater) {
    use crate::after_boot::BootDecision as D;
    for d in updater.take_outcomes() {
        let (permission, version) = match &d {
            D::PendingBless { version } => ("update.trial", version),
            D::Blessed { version } => ("update.blessed", version),
            D::Failed { version, .. } => ("update.failed", version),
            D::Nothing | D::AwaitingReboot { .. } => continue,
        };
        let details = serde_json::json!({ "outcome": d.to_string() });
        audit(guard, permission, &version.to_string(), details).await;
    }
}

fn bus_err(e: zbus::Error) -> Error {
    Error::Common(rampart_common::Error::BusConnect(Box::new(e)))
}

/// What tests replace: who counts as root on the console, the running version, how to reboot, the tick.
#[derive(Debug, Default)]
pub struct Overrides {
    pub console_uid: Option<u32>,
    pub running_version: Option<Version>,
    pub reboot: Option<Arc<dyn Reboot>>,
    pub tick: Option<Duration>,
}

/// Runs the daemon on `builder`'s bus until `shutdown` resolves.
pub async fn run(
    builder: zbus::connection::Builder<'_>,
    settings: Settings,
    overrides: Overrides,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let version = overrides.running_version.unwrap_or_else(|| {
        let text = rampart_common::os_release::image_version(env!("CARGO_PKG_VERSION"));
        Version::parse(&text).unwrap_or_else(|e| {
            log::warn!("IMAGE_VERSION {text:?} is not a version ({e}); treating the running image as 0.0.0");
            Version::new(0, 0, 0)
        })
    });
    let source = settings
        .source
        .as_ref()
        .map_or_else(|| "(no source)".to_owned(), ToString::to_string);
    let updater = {
        let settings = settings.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Arc::new(Updater::new(settings, version, runtime)))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    };
    let conn = builder.build().await.map_err(bus_err)?;
    let reboot = overrides
        .reboot
        .unwrap_or_else(|| Arc::new(Logind::new(conn.clone())));
    let mut guard = Guard::new(&conn).await.map_err(bus_err)?;
    if let Some(uid) = overrides.console_uid {
        guard = guard.with_console_uid(uid);
    }
    audit_outcomes(&guard, &updater).await;
    let service = UpdateService::new(
        guard.clone(),
        Arc::clone(&updater),
        Arc::clone(&reboot),
        source,
    );
    rampart_common::bus::publish(&conn, BUS_NAME, OBJECT_PATH, service).await?;

    let status = updater.status().message;
    log::info!("serving: {status}");
    notify::ready(&status);
    let probe = Arc::clone(&updater);
    let watchdog = notify::spawn_watchdog(move || probe.healthy());
    let tick = overrides.tick.unwrap_or(TICK);
    let ticker = {
        let updater = Arc::clone(&updater);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                // systemd-bless-boot drops the entry's counter after boot-complete.target; seeing that here
                // raises the anti-rollback floor and finishes the attempt.
                tokio::task::block_in_place(|| updater.observe_boot());
                audit_outcomes(&guard, &updater).await;
                notify::status(&updater.status().message);
                if updater.reboot_due() {
                    log::info!("maintenance window: rebooting into the installed update");
                    let version = updater.status().update_version;
                    audit(&guard, "update.reboot", &version, serde_json::json!({})).await;
                    if let Err(e) = reboot.reboot().await {
                        updater.record_error(format!("cannot reboot: {e}"));
                    }
                }
            }
        })
    };

    let why = shutdown.await;
    log::info!("{why}: stopping");
    notify::stopping("stopping");
    // Everything holding the updater goes before we return, so its state-directory lock is released with it:
    // the service is referenced from the connection it holds (a cycle), so it is removed explicitly.
    ticker.abort();
    let _ = ticker.await;
    if let Some(w) = watchdog {
        w.abort();
        let _ = w.await;
    }
    let _ = conn.release_name(BUS_NAME).await;
    let _ = conn
        .object_server()
        .remove::<UpdateService, _>(OBJECT_PATH)
        .await;
    Ok(())
}
