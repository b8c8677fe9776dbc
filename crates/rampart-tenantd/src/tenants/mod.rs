//! The tenants' life cycle: every change is a sequence of steps on the outside world (directories, user records,
//! sshconfd, systemd) followed by one database write. Each step that succeeded pushes its undo; if a later step
//! or the database write fails, the undos run in reverse order, so a failed change leaves nothing half-applied.
//! Changes run one at a time ([`Tenants::ops`]): a suspend and a login arriving together are ordered. A tenant's
//! services ([`services`]) follow its state: they run while it is active.
//!
//! ```text
//!            create                suspend               resume
//!   (none) ─────────► active ─────────────► suspended ─────────► active
//!                       │ delete              │ delete
//!                       ▼                     ▼
//!                    deleted ◄────────────────┘   resume (before purge_at) ─► active
//!                       │ purge_at reached (the daemon's own timer)
//!                       ▼
//!                    (purged: directory, records, keys, row gone)
//! ```

use std::sync::{Arc, Mutex};

use rampart_common::clock::now;
use rampart_common::userdb::{self, Records};
use rampart_interfaces::tenant::{slice_name, Plan, Tenant, OBJECT_PATH, TENANTS_GROUP};
use rusqlite::Connection;

use crate::directory::Directories;
use crate::error::Error;
use crate::settings::Settings;
use crate::ssh::Ssh;
use crate::store::{self, Record, State};
use crate::systemd::{scope_name, Systemd};

mod change;
mod services;
mod upkeep;

/// The login shell of every tenant: SFTP only (sshd's `ForceCommand internal-sftp` for the group).
pub const SHELL: &str = "/usr/sbin/nologin";

/// What to do to take back a step that succeeded.
#[derive(Debug)]
enum Undo {
    RemoveDirectory,
    RemoveRecords,
    SshAccess(bool),
    StopSlice,
    StartSlice(Plan),
    /// The tenant's services, after a stop of its slice (run after [`Undo::StartSlice`]: pushed before it).
    StartServices,
    Limits(Plan),
}

#[derive(Debug)]
pub struct Tenants {
    settings: Settings,
    db: Mutex<Connection>,
    /// Held for the whole of a change (it spans calls to sshconfd and systemd).
    ops: tokio::sync::Mutex<()>,
    systemd: Arc<dyn Systemd>,
    ssh: Ssh,
    records: Records,
    dirs: Directories,
    conn: zbus::Connection,
    /// Wakes the purge timer when a delete set a new purge time.
    purge_changed: tokio::sync::Notify,
}

impl Tenants {
    pub fn new(
        settings: Settings,
        db: Connection,
        systemd: Arc<dyn Systemd>,
        ssh: Ssh,
        dirs: Directories,
        conn: zbus::Connection,
    ) -> Tenants {
        let records = Records::new(settings.userdb_dir.clone(), settings.uids.clone());
        Tenants {
            settings,
            db: Mutex::new(db),
            ops: tokio::sync::Mutex::new(()),
            systemd,
            ssh,
            records,
            dirs,
            conn,
            purge_changed: tokio::sync::Notify::new(),
        }
    }

    /// Notified when a purge time was set (the timer then looks again).
    pub fn purge_changed(&self) -> &tokio::sync::Notify {
        &self.purge_changed
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn db<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self
            .db
            .lock()
            .map_err(|_| Error::Task("the database lock is poisoned".into()))?;
        tokio::task::block_in_place(|| f(&conn))
    }

    /// Whether the database is still usable (the watchdog's question).
    pub fn healthy(&self) -> bool {
        !self.db.is_poisoned()
    }

    pub fn list(&self) -> Result<Vec<Tenant>, Error> {
        let all = self.db(store::all)?;
        Ok(all.iter().map(|r| r.to_wire(self.dirs.root())).collect())
    }

    pub fn get(&self, name: &str) -> Result<Record, Error> {
        self.db(|c| store::get(c, name))?
            .ok_or_else(|| Error::NotFound(name.to_owned()))
    }

    fn user(&self, r: &Record) -> userdb::User {
        userdb::User {
            name: r.name.clone(),
            uid: r.uid,
            real_name: format!("Rampart tenant {}", r.name),
            home: self.dirs.data(&r.name),
            shell: SHELL.to_owned(),
            groups: vec![TENANTS_GROUP.to_owned()],
        }
    }

    fn wire(&self, r: &Record) -> Tenant {
        r.to_wire(self.dirs.root())
    }

    /// Tells listeners (the panel, monitord) that `name` is now in `state`.
    async fn changed(&self, name: &str, state: &str) {
        let sent = self
            .conn
            .emit_signal(
                None::<&str>,
                OBJECT_PATH,
                rampart_interfaces::tenant::INTERFACE,
                "Changed",
                &(name, state),
            )
            .await;
        if let Err(e) = sent {
            log::warn!("could not signal that {name} is {state}: {e}");
        }
    }

    /// Takes back the steps in `done`, last first. Failures are logged: the original error is what the caller
    /// sees.
    async fn rollback(&self, r: &Record, token: &str, done: Vec<Undo>) {
        let slice = slice_name(&r.name);
        for undo in done.into_iter().rev() {
            let result = match &undo {
                Undo::RemoveDirectory => self.dirs.remove(&r.name),
                Undo::RemoveRecords => self.records.remove(&r.name, r.uid).map_err(Error::from),
                Undo::SshAccess(enabled) => self.ssh.set_access(token, &r.name, *enabled).await,
                Undo::StopSlice => self
                    .systemd
                    .stop(&slice)
                    .await
                    .map_err(|m| systemd_err("stop the slice", m)),
                Undo::StartSlice(plan) => self
                    .systemd
                    .ensure_slice(&slice, plan)
                    .await
                    .map_err(|m| systemd_err("start the slice", m)),
                Undo::StartServices => match self.start_services(r).await {
                    Ok(failed) if failed.is_empty() => Ok(()),
                    Ok(failed) => Err(Error::Refused(format!(
                        "services that did not start again: {}",
                        services::list_failed(&failed)
                    ))),
                    Err(e) => Err(e),
                },
                Undo::Limits(plan) => self
                    .systemd
                    .set_limits(&slice, plan)
                    .await
                    .map_err(|m| systemd_err("restore the slice's limits", m)),
            };
            if let Err(e) = result {
                log::error!(
                    "{}: could not take back a step ({undo:?}) of a failed change: {}",
                    r.name,
                    rampart_common::error::chain(&e)
                );
            }
        }
    }

    /// The end of every change: when its steps succeeded (`steps`), writes `r`; when they or the write failed,
    /// takes back the steps in `done`.
    async fn commit(
        &self,
        r: &Record,
        token: &str,
        done: Vec<Undo>,
        steps: Result<(), Error>,
    ) -> Result<(), Error> {
        let result = steps.and_then(|()| {
            self.db(|c| match store::get(c, &r.name)? {
                Some(_) => store::update(c, r, now()),
                None => store::insert(c, r, now()),
            })
        });
        if let Err(e) = result {
            self.rollback(r, token, done).await;
            return Err(e);
        }
        Ok(())
    }

    /// The tenant `name` if an SFTP session of it may open now.
    pub fn session_allowed(&self, name: &str) -> Result<Record, Error> {
        let r = self.get(name)?;
        if r.state != State::Active {
            return Err(Error::Refused(format!(
                "tenant {name} is {}: its logins are refused",
                r.state.as_str()
            )));
        }
        Ok(r)
    }

    /// Puts sshd process `pid` (checked by the caller) into a new scope in `name`'s slice.
    pub async fn open_session(&self, name: &str, pid: u32) -> Result<String, Error> {
        let _op = self.ops.lock().await;
        let r = self.session_allowed(name)?;
        let slice = slice_name(name);
        let scope = scope_name(name, pid);
        // The slice is made again if someone stopped it: a scope must never land in a slice without limits.
        self.systemd
            .ensure_slice(&slice, &r.plan)
            .await
            .map_err(|m| systemd_err("start the slice", m))?;
        self.systemd
            .start_scope(&scope, &slice, pid)
            .await
            .map_err(|m| systemd_err("start the session's scope", m))?;
        Ok(scope)
    }
}

pub(crate) fn systemd_err(step: &str, message: String) -> Error {
    Error::Systemd {
        step: step.to_owned(),
        message,
    }
}
