//! rampart-tenantd: the machine's tenants (hosting customers), on the system bus as `org.rampart.Tenant1`.
//!
//! A tenant is:
//! - **a user** of its own name with its own uid and group from `uid_min..=uid_max` (20000–29999; identityd's
//!   accounts use 10000–19999), shell `nologin`, member of the static group `rampart-tenants`. The root is
//!   read-only, so the user is a set of nss-systemd JSON records under `/run/userdb`, rewritten from the database
//!   at every start (rampart_common::userdb);
//! - **a directory** `/var/lib/rampart-tenants/<name>` (root's, the SFTP chroot) holding `data/` (the tenant's,
//!   its home) — [`directory`];
//! - **a slice** `tenant-<name>.slice` under the shipped `tenant.slice`, a transient unit with the CPU, memory, IO
//!   and task limits of its plan — [`systemd`]. Its SFTP sessions run there: sshd's PAM session stack runs
//!   `rampart-tenant-session` for the group instead of pam_systemd, which calls `OpenSession` to move sshd's
//!   session process into a scope in the slice ([`session`]);
//! - **its services**, long-running programs started through the API (`StartService`): transient units
//!   `tenant-<name>-<service>.service` in the slice, as the tenant's user, sandboxed, kept in the database and
//!   started again at start and on resume ([`systemd::service_properties`], `tenants/services.rs`).
//!
//! Life cycle ([`tenants`]): create, change plan, suspend (SSH access off through rampart-sshconfd, every process
//! stopped with the slice, logins refused by `OpenSession` and so by PAM), resume, delete (like suspend, and the
//! data is purged after `retention_days` by this daemon's own timer, audited as `service:rampart-tenantd`).
//! Every change is authorized and audited (rampart_common::guard), and either fully applied or not at all.
//!
//! Rejected: `useradd` (writes `/etc`, read-only here), homes under `/home` (admins' homes live there; the
//! chroot must be root's all the way up), pam_systemd for tenants (logind would put them in `user-<uid>.slice`,
//! outside their limits), unit files for slices (`/etc` again; transient units need no file and are made again
//! at start), and an sshd `Match` in an included file (a `Match` there would extend over the rest of Debian's
//! main file; the image ships its own `sshd_config` with the block at the end).

pub mod directory;
mod error;
pub mod nss;
pub mod service;
pub mod session;
pub mod settings;
pub mod ssh;
pub mod store;
pub mod systemd;
pub mod tenants;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use error::Error;
use rampart_common::clock::now;
use rampart_common::guard::{Action, Guard};
use rampart_common::notify;
use rampart_interfaces::audit::Outcome;
use rampart_interfaces::tenant::{BUS_NAME, OBJECT_PATH};
use serde_json::json;

use crate::directory::Directories;
use crate::service::TenantService;
use crate::settings::Settings;
use crate::ssh::Ssh;
use crate::systemd::{Manager, Systemd};
use crate::tenants::Tenants;

/// Who the audit log names for what the daemon does on its own (purges).
pub const PRINCIPAL: &str = "service:rampart-tenantd";
/// The audit log's action for a purge (an event of the daemon's own, not a permission anyone holds).
pub const PURGE_EVENT: &str = "tenant.purge";
/// How often deleted tenants are looked at (sooner when a purge is due sooner).
pub const TICK: Duration = Duration::from_secs(60);

/// What tests replace. Production uses none of these.
#[derive(Debug, Default)]
pub struct Overrides {
    /// Who counts as root on the console (and owns sshd's processes).
    pub console_uid: Option<u32>,
    /// systemd's Manager (tests on a private bus have none).
    pub systemd: Option<Arc<dyn Systemd>>,
    /// Leave directory owners alone (tests that cannot run as root).
    pub no_chown: bool,
    /// Where processes are looked up (`/proc`).
    pub proc_root: Option<PathBuf>,
    pub tick: Option<Duration>,
    /// Instead of `retention_days` (a purge a test can wait for).
    pub retention: Option<Duration>,
}

fn bus_err(e: zbus::Error) -> Error {
    Error::Common(rampart_common::Error::BusConnect(Box::new(e)))
}

/// Runs the daemon on `builder`'s bus until `shutdown` resolves.
pub async fn run(
    builder: zbus::connection::Builder<'_>,
    mut settings: Settings,
    overrides: Overrides,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    if let Some(r) = overrides.retention {
        settings.retention = r;
    }
    let path = settings.database.clone();
    let db = tokio::task::block_in_place(|| store::open(&path))?;
    let conn = builder.build().await.map_err(bus_err)?;
    let systemd = overrides
        .systemd
        .unwrap_or_else(|| Arc::new(Manager::new(conn.clone())));
    let ssh = Ssh::new(&conn).await?;
    let dirs = Directories::new(settings.directory_root.clone(), !overrides.no_chown);
    let tenants = Arc::new(Tenants::new(settings, db, systemd, ssh, dirs, conn.clone()));
    // Before serving: user records, directories and slices match the database.
    let status = tenants.start().await?;

    let root_uid = overrides.console_uid.unwrap_or(0);
    let mut guard = Guard::new(&conn).await.map_err(bus_err)?;
    if let Some(uid) = overrides.console_uid {
        guard = guard.with_console_uid(uid);
    }
    let service = TenantService::new(
        guard.clone(),
        Arc::clone(&tenants),
        root_uid,
        overrides
            .proc_root
            .unwrap_or_else(|| PathBuf::from("/proc")),
    );
    rampart_common::bus::publish(&conn, BUS_NAME, OBJECT_PATH, service).await?;
    log::info!("serving: {status}");
    notify::ready(&status);

    // The watchdog is fed only while the purge loop keeps going round and the database is usable.
    let tick = overrides.tick.unwrap_or(TICK);
    let last_loop = Arc::new(AtomicU64::new(now()));
    let stale_after = tick.as_secs().saturating_mul(3).max(60);
    let (probe, health) = (Arc::clone(&last_loop), Arc::clone(&tenants));
    let _watchdog = notify::spawn_watchdog(move || {
        health.healthy() && now().saturating_sub(probe.load(Ordering::Relaxed)) <= stale_after
    });

    tokio::pin!(shutdown);
    loop {
        last_loop.store(now(), Ordering::Relaxed);
        purge_due(&guard, &tenants).await;
        let wait = match tenants.next_purge() {
            Ok(Some(at)) => tick.min(Duration::from_secs(at.saturating_sub(now()).max(1))),
            Ok(None) => tick,
            Err(e) => {
                log::error!("{}", rampart_common::error::chain(&e));
                tick
            }
        };
        tokio::select! {
            why = &mut shutdown => {
                log::info!("{why}: stopping");
                break;
            }
            () = tokio::time::sleep(wait) => {}
            () = tenants.purge_changed().notified() => {}
        }
    }
    notify::stopping("stopping");
    let _ = conn.release_name(BUS_NAME).await;
    Ok(())
}

/// Purges every deleted tenant whose time has come, each audited first as the daemon's own act (an audit log
/// that does not answer postpones the purge: nothing is removed unaudited). A failed purge is retried next tick.
async fn purge_due(guard: &Guard, tenants: &Tenants) {
    let due = match tenants.due(now()) {
        Ok(due) => due,
        Err(e) => {
            log::error!("{}", rampart_common::error::chain(&e));
            return;
        }
    };
    for r in due {
        let details = json!({ "uid": r.uid, "reason": r.reason, "purge_at": r.purge_at });
        let action = |details| Action {
            permission: PURGE_EVENT,
            target: &r.name,
            details,
        };
        if let Err(e) = guard
            .record_event(None, PRINCIPAL, action(details), Outcome::Allowed)
            .await
        {
            log::warn!("{}: purge postponed, the audit log refused it: {e}", r.name);
            continue;
        }
        if let Err(e) = tenants.purge(&r.name).await {
            let text = rampart_common::error::chain(&e);
            log::error!("{}: purge failed (retried later): {text}", r.name);
            let details = json!({ "error": text });
            if let Err(e) = guard
                .record_event(None, PRINCIPAL, action(details), Outcome::Failed)
                .await
            {
                log::error!("could not audit the failed purge of {}: {e}", r.name);
            }
        }
    }
}
