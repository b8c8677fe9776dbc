//! The `org.rampart.Identity1` object: arguments are checked here, mutations go through the guard (authorize →
//! audit → act, with tokens checked in-process), logins and setup steps are audited as events; the work is in
//! [`crate::identity`], [`crate::login`], [`crate::accounts`] and [`crate::setup`].

use std::sync::Arc;

use rampart_common::clock::now;
use rampart_common::guard::{Action, Guard};
use rampart_interfaces::audit::Outcome;
use rampart_interfaces::identity::{
    AccountInfo, Challenge, Enrolment, Principal, Session, SessionInfo, SetupCode, SetupInfo,
    ROLE_ROOT,
};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::identity::Identity;
use crate::login::Refused;

#[derive(Debug)]
pub struct IdentityService {
    guard: Guard,
    identity: Arc<Identity>,
    /// Written when setup completes: `rampart-webd-redirect.path` starts the port-80 redirect on it.
    marker: std::path::PathBuf,
}

/// What a caller says about itself (client address, typed user name) is kept to a bounded length.
fn source_of(source: &str) -> &str {
    crate::secrets::bounded(source, 64)
}

impl IdentityService {
    pub fn new(
        guard: Guard,
        identity: Arc<Identity>,
        marker: std::path::PathBuf,
    ) -> IdentityService {
        IdentityService {
            guard,
            identity,
            marker,
        }
    }

    async fn console_only(&self, header: &Header<'_>, what: &str) -> Result<(), BusError> {
        if self.guard.caller_is_console(header).await? {
            Ok(())
        } else {
            Err(BusError::AccessDenied(format!(
                "{what} is for root on the machine's console only"
            )))
        }
    }

    /// Audits a login or setup step that is not a guarded method; a refused step is denied, never hidden.
    async fn audit_step(
        &self,
        header: &Header<'_>,
        actor: &str,
        permission: &str,
        details: serde_json::Value,
        ok: bool,
    ) -> Result<(), BusError> {
        let action = Action {
            permission,
            target: actor,
            details,
        };
        let outcome = if ok {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        self.guard
            .record_event(Some(header), actor, action, outcome)
            .await
    }

    /// For account changes: the caller may touch a root account (or make one) only with `identity.grant-root`.
    fn may_grant_root(&self, token: &str) -> Result<(), BusError> {
        if token.is_empty() {
            return Ok(()); // root on the console (the guard already checked who calls without a token)
        }
        self.identity
            .authorize(token, "identity.grant-root", now())
            .map(|_| ())
            .map_err(BusError::from)
    }

    fn guard_root_target(&self, token: &str, name: &str) -> Result<(), BusError> {
        match self.identity.account(name) {
            Ok(a) if a.role == ROLE_ROOT => self.may_grant_root(token),
            _ => Ok(()),
        }
    }

    fn mark_setup_complete(&self) {
        if let Err(e) = std::fs::write(&self.marker, b"") {
            log::error!(
                "cannot write {}: {e}; the port-80 redirect stays off",
                self.marker.display()
            );
        }
    }
}

fn refused(r: Refused) -> BusError {
    BusError::from(r.error)
}

#[zbus::interface(name = "org.rampart.Identity1")]
impl IdentityService {
    async fn authorize(&self, token: &str, permission: &str) -> Result<Principal, BusError> {
        Ok(self.identity.authorize(token, permission, now())?)
    }

    async fn session_info(&self, token: &str) -> Result<SessionInfo, BusError> {
        Ok(self.identity.session_info(token, now())?)
    }

    async fn login(
        &self,
        #[zbus(header)] header: Header<'_>,
        username: &str,
        password: &str,
        source: &str,
    ) -> Result<Challenge, BusError> {
        let source = source_of(source);
        match self.identity.login(username, password, source, now()).await {
            Ok(challenge) => Ok(challenge),
            Err(r) => {
                log::info!(
                    "panel login refused for {username:?} from {source} ({})",
                    r.reason.as_str()
                );
                let details =
                    json!({ "source": source, "step": "password", "reason": r.reason.as_str() });
                self.audit_step(&header, username, "identity.login", details, false)
                    .await?;
                Err(refused(r))
            }
        }
    }

    async fn login_second_factor(
        &self,
        #[zbus(header)] header: Header<'_>,
        challenge: &str,
        code: &str,
        source: &str,
    ) -> Result<Session, BusError> {
        let source = source_of(source);
        match self.identity.second_factor(challenge, code, source, now()) {
            Ok(session) => {
                let details = json!({
                    "source": source, "session": session.id, "enrolled": !session.recovery_codes.is_empty(),
                });
                self.audit_step(&header, &session.username, "identity.login", details, true)
                    .await?;
                log::info!(
                    "{} opened session {} from {source}",
                    session.username,
                    session.id
                );
                Ok(session)
            }
            Err(r) => {
                log::info!(
                    "second factor refused from {source} ({})",
                    r.reason.as_str()
                );
                let details = json!({ "source": source, "step": "second-factor", "reason": r.reason.as_str() });
                self.audit_step(&header, "session", "identity.login", details, false)
                    .await?;
                Err(refused(r))
            }
        }
    }

    async fn logout(&self, token: &str) -> Result<(), BusError> {
        if let Some((id, user)) = self.identity.logout(token)? {
            log::info!("{user} closed session {id}");
        }
        Ok(())
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, BusError> {
        Ok(self.identity.accounts()?)
    }

    async fn create_account(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
        role: &str,
        password: &str,
        expires_at: u64,
    ) -> Result<AccountInfo, BusError> {
        let action = Action {
            permission: "identity.account-create",
            target: username,
            details: json!({ "role": role, "expires_at": expires_at }),
        };
        if role == ROLE_ROOT {
            self.may_grant_root(token)?;
        }
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(self
                    .identity
                    .create_account(p.name(), username, role, password, expires_at, now())
                    .await?)
            })
            .await
    }

    async fn set_disabled(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
        disabled: bool,
    ) -> Result<AccountInfo, BusError> {
        self.guard_root_target(token, username)?;
        let action = Action {
            permission: "identity.account-disable",
            target: username,
            details: json!({ "disabled": disabled }),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(self
                    .identity
                    .set_disabled(username, disabled, p.name(), now())
                    .await?)
            })
            .await
    }

    async fn set_expiry(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
        expires_at: u64,
    ) -> Result<AccountInfo, BusError> {
        self.guard_root_target(token, username)?;
        let action = Action {
            permission: "identity.account-expiry",
            target: username,
            details: json!({ "expires_at": expires_at }),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                Ok(self
                    .identity
                    .set_expiry(username, expires_at, now())
                    .await?)
            })
            .await
    }

    async fn reset_second_factor(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
    ) -> Result<AccountInfo, BusError> {
        self.guard_root_target(token, username)?;
        let action = Action {
            permission: "identity.2fa-reset",
            target: username,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                Ok(self.identity.reset_second_factor(username)?)
            })
            .await
    }

    async fn recover_second_factor(
        &self,
        #[zbus(header)] header: Header<'_>,
        username: &str,
        recovery_code: &str,
    ) -> Result<AccountInfo, BusError> {
        self.console_only(&header, "recovering 2FA with a recovery code")
            .await?;
        let action = Action {
            permission: "identity.2fa-recover",
            target: username,
            details: json!({}),
        };
        self.guard
            .run(&header, "", action, |_| async move {
                Ok(self
                    .identity
                    .recover_second_factor(username, recovery_code, now())?)
            })
            .await
    }

    async fn change_password(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        old: &str,
        new: &str,
    ) -> Result<(), BusError> {
        let who = self
            .identity
            .session_info(token, now())
            .map(|s| s.username)
            .unwrap_or_default();
        let action = Action {
            permission: "identity.password",
            target: &who,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                self.identity.change_password(token, old, new).await?;
                Ok(())
            })
            .await
    }

    async fn revoke_sessions(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
    ) -> Result<u32, BusError> {
        let action = Action {
            permission: "identity.session-revoke",
            target: username,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                Ok(self.identity.revoke_sessions(username)?)
            })
            .await
    }

    async fn setup_state(&self) -> Result<SetupInfo, BusError> {
        Ok(self.identity.setup_info()?)
    }

    async fn setup_code(&self, #[zbus(header)] header: Header<'_>) -> Result<SetupCode, BusError> {
        self.console_only(&header, "the setup code").await?;
        Ok(self.identity.setup_code(now())?)
    }

    async fn setup_begin(
        &self,
        #[zbus(header)] header: Header<'_>,
        code: &str,
        source: &str,
    ) -> Result<String, BusError> {
        let source = source_of(source);
        let result = self.identity.setup_begin(code, source, now());
        let details = json!({ "via": "web", "source": source });
        self.audit_step(
            &header,
            "setup:web",
            "identity.setup-begin",
            details,
            result.is_ok(),
        )
        .await?;
        if result.is_err() {
            log::warn!("a wrong setup code was tried from {source}");
        }
        Ok(result?)
    }

    async fn setup_begin_console(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, BusError> {
        self.console_only(&header, "starting the console wizard")
            .await?;
        let token = self.identity.setup_begin_console(now())?;
        self.audit_step(
            &header,
            "setup:console",
            "identity.setup-begin",
            json!({ "via": "console" }),
            true,
        )
        .await?;
        Ok(token)
    }

    async fn setup_admin(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<Enrolment, BusError> {
        let action = Action {
            permission: "identity.setup",
            target: username,
            details: json!({ "step": "admin" }),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                Ok(self
                    .identity
                    .setup_admin(token, username, password, now())
                    .await?)
            })
            .await
    }

    async fn setup_second_factor(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        code: &str,
    ) -> Result<Vec<String>, BusError> {
        let action = Action {
            permission: "identity.setup",
            target: "totp",
            details: json!({ "step": "second-factor" }),
        };
        self.guard
            .run(&header, token, action, |_| async move {
                Ok(self.identity.setup_second_factor(token, code, now())?)
            })
            .await
    }

    async fn setup_finish(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        token: &str,
    ) -> Result<SetupInfo, BusError> {
        let admin = self
            .identity
            .setup_proposal(token, now())
            .map(|a| a.username)
            .unwrap_or_default();
        let action = Action {
            permission: "identity.setup",
            target: &admin,
            details: json!({ "step": "finish" }),
        };
        let done = self
            .guard
            .run(&header, token, action, |_| async move {
                Ok(self.identity.setup_complete(token, now()).await?)
            })
            .await?;
        self.mark_setup_complete();
        log::info!(
            "setup completed via {}: administrator {}; proposals removed: {:?}",
            done.info.completed_via,
            done.info.admin,
            done.removed
        );
        notify_status(&done.info);
        if let Err(e) =
            Self::setup_completed(&emitter, &done.info.completed_via, &done.info.admin).await
        {
            log::warn!("cannot emit SetupCompleted: {e}");
        }
        Ok(done.info)
    }

    #[zbus(signal)]
    async fn setup_completed(
        emitter: &SignalEmitter<'_>,
        via: &str,
        admin: &str,
    ) -> zbus::Result<()>;
}

/// systemd's status line: setup state and account count.
pub fn notify_status(info: &SetupInfo) {
    let text = if info.state == rampart_interfaces::identity::SETUP_COMPLETE {
        format!("setup complete (administrator {})", info.admin)
    } else {
        "waiting for the first-boot setup".to_owned()
    };
    rampart_common::notify::status(&text);
}
