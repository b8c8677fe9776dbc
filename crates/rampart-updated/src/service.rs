//! The `org.rampart.Update1` object: reads answer from [`Updater`]'s copy of the state; mutations go through the
//! guard (authorize → audit → act), and Apply hands the work to a blocking task and returns at once.

use std::sync::Arc;

use rampart_common::guard::{Action, Guard};
use rampart_interfaces::update::{Attempt, CheckResult, Status};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use zbus::message::Header;

use crate::reboot::Reboot;
use crate::updater::{AfterApply, Updater};

#[derive(Debug)]
pub struct UpdateService {
    guard: Guard,
    updater: Arc<Updater>,
    reboot: Arc<dyn Reboot>,
    source: String,
}

impl UpdateService {
    pub fn new(
        guard: Guard,
        updater: Arc<Updater>,
        reboot: Arc<dyn Reboot>,
        source: String,
    ) -> Self {
        UpdateService {
            guard,
            updater,
            reboot,
            source,
        }
    }
}

/// Runs a blocking step of the updater on this worker thread (the runtime is multi-threaded).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Apply's background task: the engine on a blocking thread, then the reboot if it is due.
pub fn spawn_apply(updater: Arc<Updater>, reboot: Arc<dyn Reboot>, reboot_now: bool) {
    tokio::spawn(async move {
        let u = Arc::clone(&updater);
        let next = tokio::task::spawn_blocking(move || u.apply(reboot_now)).await;
        match next {
            Ok(AfterApply::Reboot) => {
                log::info!("update installed; rebooting into it");
                if let Err(e) = reboot.reboot().await {
                    updater.record_error(format!("cannot reboot: {e}"));
                }
            }
            Ok(AfterApply::Nothing) => {}
            Err(e) => updater.record_error(format!("the update task failed: {e}")),
        }
    });
}

#[zbus::interface(name = "org.rampart.Update1")]
impl UpdateService {
    async fn status(&self) -> Status {
        self.updater.status()
    }

    async fn history(&self) -> Vec<Attempt> {
        self.updater.history()
    }

    async fn check(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
    ) -> Result<CheckResult, BusError> {
        let action = Action {
            permission: "update.check",
            target: &self.source,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async {
                // A blocking thread, not block_in_place: the HTTPS source drives its I/O with block_on.
                let updater = Arc::clone(&self.updater);
                tokio::task::spawn_blocking(move || updater.check())
                    .await
                    .map_err(|e| BusError::Failed(format!("the check task failed: {e}")))?
                    .map_err(BusError::from)
            })
            .await
    }

    async fn apply(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        reboot_now: bool,
    ) -> Result<Status, BusError> {
        let target = self.updater.status().target_slot;
        let action = Action {
            permission: "update.apply",
            target: &target,
            details: json!({ "reboot_now": reboot_now, "source": self.source }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                self.updater.start()?;
                spawn_apply(
                    Arc::clone(&self.updater),
                    Arc::clone(&self.reboot),
                    reboot_now,
                );
                Ok(self.updater.status())
            })
            .await
    }

    async fn cancel(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
    ) -> Result<Status, BusError> {
        let version = self.updater.status().update_version;
        let action = Action {
            permission: "update.cancel",
            target: &version,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async {
                blocking(|| self.updater.cancel())?;
                Ok(self.updater.status())
            })
            .await
    }
}
