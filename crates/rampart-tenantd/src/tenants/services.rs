//! A tenant's long-running services: started through the API (`StartService`), kept in the database, started
//! again when the daemon starts (transient units are gone after a boot) and when the tenant is resumed; a suspend
//! or delete stops them with the slice, a purge removes them with the tenant. Each runs as the tenant's user in
//! its slice (crate::systemd::service_properties).

use rampart_common::clock::now;
use rampart_common::units::UnitState;
use rampart_interfaces::tenant::{service_unit, slice_name, ServiceInfo};

use super::{systemd_err, Tenants};
use crate::error::Error;
use crate::store::{self, Record, ServiceRecord, State};
use crate::systemd::{is_up, ServiceSpec};

/// The units of `tenant`'s services, as a pattern for systemd (tenant names have no `-`: `tenant-shop-*` is
/// shop's alone).
fn pattern(tenant: &str) -> String {
    format!("tenant-{tenant}-*.service")
}

/// The wire form of `s`, with its state from `states` (not loaded: inactive).
fn info(s: &ServiceRecord, states: &[UnitState]) -> ServiceInfo {
    let unit = service_unit(&s.tenant, &s.name);
    let (active, sub) = states
        .iter()
        .find(|u| u.unit == unit)
        .map_or(("inactive", "dead"), |u| (&u.active[..], &u.sub[..]));
    ServiceInfo {
        tenant: s.tenant.clone(),
        name: s.name.clone(),
        unit,
        argv: s.argv.clone(),
        active: active.to_owned(),
        sub: sub.to_owned(),
        created_at: s.created_at,
        created_by: s.created_by.clone(),
    }
}

impl Tenants {
    /// The tenant `name` if a service of it may start now: it exists and is active.
    pub fn service_allowed(&self, name: &str) -> Result<Record, Error> {
        let r = self.get(name)?;
        if r.state != State::Active {
            return Err(Error::Refused(format!(
                "tenant {name} is {}: services run only for an active tenant (`rampartctl tenant resume {name}`; \
                 its services start again with it)",
                r.state.as_str()
            )));
        }
        Ok(r)
    }

    /// Starts service `name` of the active tenant `tenant` and keeps it. Refused when the tenant has a service
    /// of that name already. A start that fails leaves nothing behind (no unit, no row).
    pub async fn start_service(
        &self,
        tenant: &str,
        name: &str,
        argv: &[String],
        actor: &str,
    ) -> Result<ServiceInfo, Error> {
        let _op = self.ops.lock().await;
        let r = self.service_allowed(tenant)?;
        if let Some(old) = self.db(|c| store::get_service(c, tenant, name))? {
            return Err(Error::Refused(format!(
                "tenant {tenant} already has a service {name} ({:?}); stop it first \
                 (`rampartctl tenant service-stop {tenant} {name}`) to start it with another command line",
                old.argv
            )));
        }
        let s = ServiceRecord {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            argv: argv.to_vec(),
            created_at: now(),
            created_by: actor.to_owned(),
        };
        // The slice is made again if someone stopped it: a service must never land in a slice without limits.
        self.systemd
            .ensure_slice(&slice_name(tenant), &r.plan)
            .await
            .map_err(|m| systemd_err("start the slice", m))?;
        let started = match self.launch(&r, &s).await {
            Ok(()) => self.db(|c| store::insert_service(c, &s)),
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            self.forget(&s).await;
            return Err(e);
        }
        log::info!("{tenant}: service {name} started: {:?}", s.argv);
        let states = match self.systemd.states(&service_unit(tenant, name)).await {
            Ok(states) => states,
            Err(m) => {
                log::warn!("{tenant}: cannot read the state of service {name}: {m}");
                Vec::new()
            }
        };
        Ok(info(&s, &states))
    }

    /// Stops service `name` of `tenant` and forgets it, whatever the tenant's state.
    pub async fn stop_service(&self, tenant: &str, name: &str) -> Result<(), Error> {
        let _op = self.ops.lock().await;
        let r = self.get(tenant)?;
        let s = self
            .db(|c| store::get_service(c, tenant, name))?
            .ok_or_else(|| Error::NoService {
                tenant: tenant.to_owned(),
                name: name.to_owned(),
            })?;
        self.systemd
            .stop_service(&service_unit(tenant, name))
            .await
            .map_err(|m| systemd_err(&format!("stop the service {name}"), m))?;
        if let Err(e) = self.db(|c| store::delete_service(c, tenant, name)) {
            // Kept, so running again.
            if r.state == State::Active {
                if let Err(u) = self.launch(&r, &s).await {
                    log::error!(
                        "{tenant}: could not start service {name} again after a failed stop: {}",
                        rampart_common::error::chain(&u)
                    );
                }
            }
            return Err(e);
        }
        log::info!("{tenant}: service {name} stopped and removed");
        Ok(())
    }

    /// `tenant`'s services with their states, by name.
    pub async fn services(&self, tenant: &str) -> Result<Vec<ServiceInfo>, Error> {
        self.get(tenant)?;
        let rows = self.db(|c| store::services(c, tenant))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let states = self
            .systemd
            .states(&pattern(tenant))
            .await
            .map_err(|m| systemd_err("list the tenant's services", m))?;
        Ok(rows.iter().map(|s| info(s, &states)).collect())
    }

    /// Starts every service of `r` that is not running (none is after a boot, a resume or a suspend's undo; a
    /// restarted daemon leaves running ones alone). Returns those that could not start, each with why.
    pub(super) async fn start_services(&self, r: &Record) -> Result<Vec<(String, Error)>, Error> {
        let services = self.db(|c| store::services(c, &r.name))?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let states = self
            .systemd
            .states(&pattern(&r.name))
            .await
            .map_err(|m| systemd_err("list the tenant's services", m))?;
        let mut failed = Vec::new();
        for s in &services {
            let unit = service_unit(&r.name, &s.name);
            if states.iter().any(|u| u.unit == unit && is_up(&u.active)) {
                continue;
            }
            if let Err(e) = self.launch(r, s).await {
                failed.push((s.name.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Starts `s` as tenant `r`'s service. A start that failed leaves the unit failed (its state tells why).
    async fn launch(&self, r: &Record, s: &ServiceRecord) -> Result<(), Error> {
        let unit = service_unit(&r.name, &s.name);
        let slice = slice_name(&r.name);
        let directory = self.dirs.data(&r.name);
        let description = format!("Rampart tenant {} service {}", r.name, s.name);
        let spec = ServiceSpec {
            description: &description,
            slice: &slice,
            uid: r.uid,
            directory: &directory,
            argv: &s.argv,
        };
        self.systemd
            .start_service(&unit, spec)
            .await
            .map_err(|m| systemd_err(&format!("start the service {}", s.name), m))
    }

    /// Stops and forgets `s`'s unit, taking back a start; a failure is logged (the caller reports its own error).
    async fn forget(&self, s: &ServiceRecord) {
        if let Err(m) = self
            .systemd
            .stop_service(&service_unit(&s.tenant, &s.name))
            .await
        {
            log::error!(
                "{}: could not take back the start of service {}: {m}",
                s.tenant,
                s.name
            );
        }
    }
}

/// Services that did not start, each with why.
pub(super) fn list_failed(failed: &[(String, Error)]) -> String {
    failed
        .iter()
        .map(|(name, e)| format!("{name}: {}", rampart_common::error::chain(e)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error of a resume whose services did not all start (the resume is taken back).
pub(super) fn not_started(tenant: &str, failed: &[(String, Error)]) -> Error {
    let first = failed.first().map_or("NAME", |(name, _)| name.as_str());
    Error::Refused(format!(
        "tenant {tenant} stays as it was: its services did not all start ({}). Fix what they need, or remove one \
         with `rampartctl tenant service-stop {tenant} {first}`, then resume again",
        list_failed(failed)
    ))
}
