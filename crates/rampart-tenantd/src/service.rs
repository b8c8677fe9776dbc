//! The `org.rampart.Tenant1` object: arguments are parsed into checked values here, mutations go through the
//! guard (authorize → audit → act), the work is in [`crate::tenants`]. Both service methods need
//! `tenant.service`; the audit record's target is `<tenant>/<service>`, its details the command line started
//! (`{"start": argv}`) or `{"stop": true}`.
//!
//! `OpenSession` is not a guarded method (sshd's PAM hook has no session token; only root may call it), but it
//! follows the same order: refuse or allow, audit that as the event `tenant.session` with the tenant as actor,
//! then act.

use std::path::PathBuf;
use std::sync::Arc;

use rampart_common::guard::{Action, Guard};
use rampart_interfaces::audit::Outcome;
use rampart_interfaces::tenant::{
    check_argv, check_name, check_service_name, Plan, ServiceInfo, Tenant,
};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::session::check_sshd;
use crate::store::State;
use crate::tenants::Tenants;

/// The audit log's action for an SFTP session of a tenant (an event, not a permission anyone holds).
pub const SESSION_EVENT: &str = "tenant.session";

#[derive(Debug)]
pub struct TenantService {
    guard: Guard,
    tenants: Arc<Tenants>,
    /// uid 0 in production; the tests' own uid stands in for it.
    root_uid: u32,
    proc_root: PathBuf,
}

impl TenantService {
    pub fn new(
        guard: Guard,
        tenants: Arc<Tenants>,
        root_uid: u32,
        proc_root: PathBuf,
    ) -> TenantService {
        TenantService {
            guard,
            tenants,
            root_uid,
            proc_root,
        }
    }

    fn plan(&self, name: &str) -> Result<Plan, BusError> {
        self.tenants.settings().plan(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self
                .tenants
                .settings()
                .plans
                .keys()
                .map(String::as_str)
                .collect();
            invalid(format!(
                "there is no plan {name:?}; the configured plans are {} (`rampartctl tenant plans`)",
                known.join(", ")
            ))
        })
    }

    /// Audits an `OpenSession` decision; an audit log that does not answer refuses the session.
    async fn audit_session(
        &self,
        header: &Header<'_>,
        user: &str,
        pid: u32,
        outcome: Outcome,
        why: &str,
    ) -> Result<(), BusError> {
        let target = format!("{user} pid {pid}");
        let action = Action {
            permission: SESSION_EVENT,
            target: &target,
            details: json!({ "pid": pid, "reason": why }),
        };
        self.guard
            .record_event(Some(header), user, action, outcome)
            .await
    }

    async fn refuse_session(
        &self,
        header: &Header<'_>,
        user: &str,
        pid: u32,
        why: String,
    ) -> BusError {
        if let Err(e) = self
            .audit_session(header, user, pid, Outcome::Denied, &why)
            .await
        {
            log::error!("could not audit a refused session of {user}: {e}");
        }
        BusError::AccessDenied(why)
    }
}

fn invalid(m: String) -> BusError {
    BusError::InvalidArgument(m)
}

fn name(name: &str) -> Result<&str, BusError> {
    check_name(name).map_err(invalid)?;
    Ok(name)
}

fn service_name(name: &str) -> Result<&str, BusError> {
    check_service_name(name).map_err(invalid)?;
    Ok(name)
}

/// A reason is required for suspend and delete: it is shown to whoever looks at the tenant next.
fn reason(text: &str) -> Result<String, BusError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid(
            "a reason is required (it is kept with the tenant and in the audit log)".into(),
        ));
    }
    if text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(invalid(
            "the reason must be one line of at most 200 characters".into(),
        ));
    }
    Ok(text.to_owned())
}

#[zbus::interface(name = "org.rampart.Tenant1")]
impl TenantService {
    async fn list(&self) -> Result<Vec<Tenant>, BusError> {
        Ok(self.tenants.list()?)
    }

    async fn plans(&self) -> Result<Vec<Plan>, BusError> {
        Ok(self.tenants.settings().plans.values().cloned().collect())
    }

    async fn create(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        name: &str,
        plan: &str,
    ) -> Result<Tenant, BusError> {
        let name = self::name(name)?;
        let plan = self.plan(plan)?;
        let action = Action {
            permission: "tenant.create",
            target: name,
            details: json!({ "plan": plan.name }),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(self.tenants.create(token, name, &plan, p.name()).await?)
            })
            .await
    }

    async fn set_plan(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        name: &str,
        plan: &str,
    ) -> Result<Tenant, BusError> {
        let name = self::name(name)?;
        let plan = self.plan(plan)?;
        let action = Action {
            permission: "tenant.plan",
            target: name,
            details: json!({ "plan": plan.name }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self.tenants.set_plan(name, &plan).await?)
            })
            .await
    }

    async fn suspend(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        name: &str,
        reason: &str,
    ) -> Result<Tenant, BusError> {
        let name = self::name(name)?;
        let reason = self::reason(reason)?;
        let action = Action {
            permission: "tenant.suspend",
            target: name,
            details: json!({ "reason": reason }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self
                    .tenants
                    .stop(token, name, State::Suspended, &reason)
                    .await?)
            })
            .await
    }

    async fn resume(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        name: &str,
    ) -> Result<Tenant, BusError> {
        let name = self::name(name)?;
        let action = Action {
            permission: "tenant.resume",
            target: name,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self.tenants.resume(token, name).await?)
            })
            .await
    }

    async fn delete(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        name: &str,
        reason: &str,
    ) -> Result<Tenant, BusError> {
        let name = self::name(name)?;
        let reason = self::reason(reason)?;
        let retention_days = self.tenants.settings().retention.as_secs() / 86_400;
        let action = Action {
            permission: "tenant.delete",
            target: name,
            details: json!({ "reason": reason, "retention_days": retention_days }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self
                    .tenants
                    .stop(token, name, State::Deleted, &reason)
                    .await?)
            })
            .await
    }

    async fn start_service(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        tenant: &str,
        name: &str,
        argv: Vec<String>,
    ) -> Result<ServiceInfo, BusError> {
        let tenant = self::name(tenant)?;
        let name = service_name(name)?;
        check_argv(&argv).map_err(invalid)?;
        // Checked again when it starts (under the lock of every change); here so a call that cannot succeed is
        // turned away like a malformed one.
        self.tenants.service_allowed(tenant)?;
        let target = format!("{tenant}/{name}");
        let action = Action {
            permission: "tenant.service",
            target: &target,
            details: json!({ "start": argv }),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(self
                    .tenants
                    .start_service(tenant, name, &argv, p.name())
                    .await?)
            })
            .await
    }

    async fn stop_service(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        tenant: &str,
        name: &str,
    ) -> Result<(), BusError> {
        let tenant = self::name(tenant)?;
        let name = service_name(name)?;
        let target = format!("{tenant}/{name}");
        let action = Action {
            permission: "tenant.service",
            target: &target,
            details: json!({ "stop": true }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self.tenants.stop_service(tenant, name).await?)
            })
            .await
    }

    async fn services(&self, tenant: &str) -> Result<Vec<ServiceInfo>, BusError> {
        let tenant = self::name(tenant)?;
        Ok(self.tenants.services(tenant).await?)
    }

    async fn open_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        user: &str,
        pid: u32,
    ) -> Result<(), BusError> {
        let user = self::name(user)?;
        if !self.guard.caller_is_console(&header).await? {
            let why = "only root (sshd's PAM session hook) may open a tenant's session".to_owned();
            return Err(self.refuse_session(&header, user, pid, why).await);
        }
        let (proc_root, root_uid) = (&self.proc_root, self.root_uid);
        if let Err(why) = tokio::task::block_in_place(|| check_sshd(proc_root, pid, root_uid)) {
            return Err(self.refuse_session(&header, user, pid, why).await);
        }
        if let Err(e) = self.tenants.session_allowed(user) {
            let why = rampart_common::error::chain(&e);
            return Err(self.refuse_session(&header, user, pid, why).await);
        }
        self.audit_session(&header, user, pid, Outcome::Allowed, "")
            .await?;
        match self.tenants.open_session(user, pid).await {
            Ok(scope) => {
                log::info!("{user}: SFTP session {pid} in {scope}");
                Ok(())
            }
            Err(e) => {
                let why = rampart_common::error::chain(&e);
                if let Err(a) = self
                    .audit_session(&header, user, pid, Outcome::Failed, &why)
                    .await
                {
                    log::error!("could not audit a failed session of {user}: {a}");
                }
                Err(BusError::Failed(why))
            }
        }
    }

    /// A tenant was created, changed or removed (`purged` when gone for good).
    #[zbus(signal)]
    async fn changed(emitter: &SignalEmitter<'_>, name: &str, state: &str) -> zbus::Result<()>;
}
