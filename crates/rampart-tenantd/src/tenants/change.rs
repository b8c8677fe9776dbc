//! The changes a caller asks for: create, change plan, suspend or delete, resume (a tenant's services: see
//! [`super::services`]). Each runs its steps, pushing the undo of every step that succeeded, then
//! [`Tenants::commit`] writes the row or takes the steps back.

use rampart_common::clock::now;
use rampart_interfaces::tenant::{slice_name, Plan, Tenant};

use super::{services, systemd_err, Tenants, Undo};
use crate::error::Error;
use crate::store::{self, Record, State};

impl Tenants {
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
                // Taken back in this order: the slice with its limits first, then its services in it.
                done.push(Undo::StartServices);
                done.push(Undo::StartSlice(old.plan.clone()));
            }
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, token, done, steps).await?;
        if to == State::Deleted {
            self.purge_changed.notify_one();
        }
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
            // Whole or not at all: a service that cannot start takes the resume back (stopping the slice
            // stops those that did start).
            let failed = self.start_services(&r).await?;
            if !failed.is_empty() {
                return Err(services::not_started(name, &failed));
            }
            self.ssh.set_access(token, name, true).await?;
            done.push(Undo::SshAccess(false));
            Ok::<(), Error>(())
        }
        .await;
        self.commit(&r, token, done, steps).await?;
        self.changed(name, State::Active.as_str()).await;
        Ok(self.wire(&r))
    }
}
