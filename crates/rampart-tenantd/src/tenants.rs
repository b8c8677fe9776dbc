//! The tenants' life cycle: every change is a sequence of steps on the outside world (directories, user records,
//! sshconfd, systemd) followed by one database write. Each step that succeeded pushes its undo; if a later step
//! or the database write fails, the undos run in reverse order, so a failed change leaves nothing half-applied.
//! Changes run one at a time ([`Tenants::ops`]): a suspend and a login arriving together are ordered.
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
        }
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

    /// At start, before serving: the user records from the database (`/run` is empty after a boot), the
    /// directories, every active tenant's slice with its plan (configured limits win over stored ones), every
    /// other tenant's slice stopped. Returns the status line; a tenant that cannot be set up is logged and named
    /// in it, and the others still start.
    pub async fn start(&self) -> Result<String, Error> {
        let _op = self.ops.lock().await;
        tokio::task::block_in_place(|| self.dirs.prepare_root())?;
        let all = self.db(store::all)?;
        let users: Vec<_> = all.iter().map(|r| self.user(r)).collect();
        tokio::task::block_in_place(|| self.records.sync(&users))?;
        let mut troubled = Vec::new();
        for mut r in all {
            if let Some(plan) = self.settings.plan(&r.plan.name) {
                if *plan != r.plan {
                    r.plan = plan.clone();
                    self.db(|c| store::update(c, &r, now()))?;
                }
            } else {
                log::warn!(
                    "{}: plan {:?} is no longer configured; keeping its last limits",
                    r.name,
                    r.plan.name
                );
            }
            let slice = slice_name(&r.name);
            let result = match r.state {
                State::Active => {
                    match tokio::task::block_in_place(|| self.dirs.ensure(&r.name, r.uid)) {
                        Ok(()) => self
                            .systemd
                            .ensure_slice(&slice, &r.plan)
                            .await
                            .map_err(|m| systemd_err("start the slice", m)),
                        Err(e) => Err(e),
                    }
                }
                State::Suspended | State::Deleted => self
                    .systemd
                    .stop(&slice)
                    .await
                    .map_err(|m| systemd_err("stop the slice", m)),
            };
            if let Err(e) = result {
                log::error!("{}: {}", r.name, rampart_common::error::chain(&e));
                troubled.push(r.name.clone());
            }
        }
        let count = self.db(|c| store::all(c).map(|a| a.len()))?;
        Ok(if troubled.is_empty() {
            format!("{count} tenants")
        } else {
            format!(
                "{count} tenants; could not set up {} (see the journal)",
                troubled.join(", ")
            )
        })
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

    pub async fn create(
        &self,
        token: &str,
        name: &str,
        plan: &Plan,
        actor: &str,
    ) -> Result<Tenant, Error> {
        let _op = self.ops.lock().await;
        if let Some(old) = self.db(|c| store::get(c, name))? {
            return Err(Error::Refused(format!(
                "tenant {name} already exists ({}){}",
                old.state.as_str(),
                if old.state == State::Deleted {
                    "; resume it, or wait for its purge"
                } else {
                    ""
                }
            )));
        }
        if let Some(why) = tokio::task::block_in_place(|| crate::nss::name_taken(name)) {
            return Err(Error::Refused(why));
        }
        let used = self.db(store::used_uids)?;
        let uids = &self.settings.uids;
        let uid = tokio::task::block_in_place(|| crate::nss::free_uid(uids, &used)).ok_or(
            Error::NoUid {
                first: *uids.start(),
                last: *uids.end(),
            },
        )?;
        let r = Record {
            name: name.to_owned(),
            uid,
            state: State::Active,
            plan: plan.clone(),
            created_at: now(),
            created_by: actor.to_owned(),
            reason: String::new(),
            purge_at: 0,
        };
        let slice = slice_name(name);
        let user = self.user(&r);
        let mut done = Vec::new();
        let steps = async {
            tokio::task::block_in_place(|| self.dirs.create(name, uid))?;
            done.push(Undo::RemoveDirectory);
            tokio::task::block_in_place(|| self.records.write(&user))?;
            done.push(Undo::RemoveRecords);
            self.ssh.set_access(token, name, true).await?;
            done.push(Undo::SshAccess(false));
            self.systemd
                .ensure_slice(&slice, plan)
                .await
                .map_err(|m| systemd_err("create the slice", m))?;
            done.push(Undo::StopSlice);
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, token, done, steps).await?;
        self.changed(name, State::Active.as_str()).await;
        Ok(self.wire(&r))
    }

    pub async fn set_plan(&self, name: &str, plan: &Plan) -> Result<Tenant, Error> {
        let _op = self.ops.lock().await;
        let old = self.get(name)?;
        let mut r = old.clone();
        r.plan = plan.clone();
        let slice = slice_name(name);
        let mut done = Vec::new();
        let steps = async {
            // A stopped slice gets the new limits when it starts again (resume).
            if old.state == State::Active {
                self.systemd
                    .set_limits(&slice, plan)
                    .await
                    .map_err(|m| systemd_err("change the slice's limits", m))?;
                done.push(Undo::Limits(old.plan.clone()));
            }
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, "", done, steps).await?;
        self.changed(name, r.state.as_str()).await;
        Ok(self.wire(&r))
    }

    /// Active or suspended → `to` (suspended or deleted): logins refused, every process stopped.
    pub async fn stop(
        &self,
        token: &str,
        name: &str,
        to: State,
        reason: &str,
    ) -> Result<Tenant, Error> {
        let _op = self.ops.lock().await;
        let old = self.get(name)?;
        match (old.state, to) {
            (State::Active, _) | (State::Suspended, State::Deleted) => {}
            (from, _) => {
                return Err(Error::Refused(format!(
                    "tenant {name} is {}; {} needs an active{} tenant",
                    from.as_str(),
                    if to == State::Deleted {
                        "delete"
                    } else {
                        "suspend"
                    },
                    if to == State::Deleted {
                        " or suspended"
                    } else {
                        ""
                    }
                )))
            }
        }
        let mut r = old.clone();
        r.state = to;
        r.reason = reason.to_owned();
        if to == State::Deleted {
            r.purge_at = now().saturating_add(self.settings.retention.as_secs());
        }
        let slice = slice_name(name);
        let mut done = Vec::new();
        let steps = async {
            if old.state == State::Active {
                self.ssh.set_access(token, name, false).await?;
                done.push(Undo::SshAccess(true));
            }
            self.systemd
                .stop(&slice)
                .await
                .map_err(|m| systemd_err("stop the slice", m))?;
            if old.state == State::Active {
                done.push(Undo::StartSlice(old.plan.clone()));
            }
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, token, done, steps).await?;
        self.changed(name, to.as_str()).await;
        Ok(self.wire(&r))
    }

    /// Suspended, or deleted before its purge → active.
    pub async fn resume(&self, token: &str, name: &str) -> Result<Tenant, Error> {
        let _op = self.ops.lock().await;
        let old = self.get(name)?;
        if old.state == State::Active {
            return Err(Error::Refused(format!("tenant {name} is already active")));
        }
        let mut r = old.clone();
        r.state = State::Active;
        r.reason.clear();
        r.purge_at = 0;
        let slice = slice_name(name);
        let user = self.user(&r);
        let mut done = Vec::new();
        let steps = async {
            tokio::task::block_in_place(|| {
                self.dirs.ensure(name, r.uid)?;
                self.records.write(&user).map_err(Error::from)
            })?;
            self.systemd
                .ensure_slice(&slice, &r.plan)
                .await
                .map_err(|m| systemd_err("start the slice", m))?;
            done.push(Undo::StopSlice);
            self.ssh.set_access(token, name, true).await?;
            done.push(Undo::SshAccess(false));
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, token, done, steps).await?;
        self.changed(name, State::Active.as_str()).await;
        Ok(self.wire(&r))
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

    /// Deleted tenants whose purge time has come.
    pub fn due(&self, now: u64) -> Result<Vec<Record>, Error> {
        self.db(|c| store::due(c, now))
    }

    pub fn next_purge(&self) -> Result<Option<u64>, Error> {
        self.db(store::next_purge)
    }

    /// Removes a deleted tenant for good: processes, SSH keys, directory, user records, row. Each step is
    /// idempotent, so a purge that failed half-way is simply run again at the next tick.
    pub async fn purge(&self, name: &str) -> Result<(), Error> {
        let _op = self.ops.lock().await;
        let r = self.get(name)?;
        if r.state != State::Deleted || r.purge_at > now() {
            return Err(Error::Refused(format!(
                "tenant {name} is not due for its purge"
            )));
        }
        self.systemd
            .stop(&slice_name(name))
            .await
            .map_err(|m| systemd_err("stop the slice", m))?;
        let keys = self.ssh.remove_keys(name).await?;
        tokio::task::block_in_place(|| -> Result<(), Error> {
            self.dirs.remove(name)?;
            self.records.remove(name, r.uid)?;
            Ok(())
        })?;
        self.db(|c| store::delete(c, name))?;
        log::info!("{name}: purged ({keys} SSH keys removed)");
        self.changed(name, "purged").await;
        Ok(())
    }
}

fn systemd_err(step: &str, message: String) -> Error {
    Error::Systemd {
        step: step.to_owned(),
        message,
    }
}
