//! What the daemon does on its own: bring users, directories, slices and services in line with the database at
//! start, and purge deleted tenants whose retention is over.

use rampart_common::clock::now;
use rampart_interfaces::tenant::slice_name;

use super::{systemd_err, Tenants};
use crate::error::Error;
use crate::store::{self, Record, State};

impl Tenants {
    /// At start, before serving: the user records from the database (`/run` is empty after a boot), the
    /// directories, every active tenant's slice with its plan (configured limits win over stored ones) and its
    /// services, every other tenant's slice stopped. Returns the status line; a tenant or service that cannot be
    /// set up is logged and named in it, and the others still start.
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
                State::Active => self.start_active(&r).await,
                State::Suspended | State::Deleted => self
                    .systemd
                    .stop(&slice)
                    .await
                    .map(|()| Vec::new())
                    .map_err(|m| systemd_err("stop the slice", m)),
            };
            match result {
                Ok(failed) => {
                    for (service, e) in failed {
                        log::error!(
                            "{}: service {service}: {}",
                            r.name,
                            rampart_common::error::chain(&e)
                        );
                        troubled.push(format!("{}/{service}", r.name));
                    }
                }
                Err(e) => {
                    log::error!("{}: {}", r.name, rampart_common::error::chain(&e));
                    troubled.push(r.name.clone());
                }
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

    /// An active tenant at start: its directories, its slice, then its services (those already running, when
    /// only the daemon restarted, are left alone). Returns the services that did not start.
    async fn start_active(&self, r: &Record) -> Result<Vec<(String, Error)>, Error> {
        tokio::task::block_in_place(|| self.dirs.ensure(&r.name, r.uid))?;
        self.systemd
            .ensure_slice(&slice_name(&r.name), &r.plan)
            .await
            .map_err(|m| systemd_err("start the slice", m))?;
        self.start_services(r).await
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
