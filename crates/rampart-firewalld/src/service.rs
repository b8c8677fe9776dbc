//! The `org.rampart.Firewall1` object. Arguments are parsed here, at the boundary; every mutating method then
//! goes through the guard (authorize → audit → act) and the engine on a blocking thread.

use std::sync::{Arc, Mutex};

use rampart_common::guard::{Action, LazyGuard};
use rampart_interfaces::firewall::{
    Allowed, Ban, Change, PendingChange, Rule, RuleSpec, SshAccess, Status,
};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use tokio::sync::Notify;
use zbus::message::Header;
use zbus::Connection;

use crate::engine::Engine;
use crate::spec;
use crate::store::AllowEntry;
use crate::Error;

pub use rampart_common::clock::now;

#[derive(Debug)]
pub struct FirewallService {
    engine: Arc<Mutex<Engine>>,
    /// Wakes the timer loop after a change (new deadline, audit records to deliver).
    wake: Arc<Notify>,
    guard: LazyGuard,
}

fn to_bus(e: Error) -> BusError {
    match e {
        Error::Invalid(m) => BusError::InvalidArgument(m),
        other => BusError::Failed(rampart_common::error::chain(&other)),
    }
}

/// Runs `f` on the engine in a blocking thread.
pub async fn with_engine<T: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    f: impl FnOnce(&mut Engine) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let engine = Arc::clone(engine);
    tokio::task::spawn_blocking(move || {
        let mut e = engine.lock().map_err(|_| {
            Error::Refused(
                "the firewall state is unusable after an internal error; restart rampart-firewalld"
                    .into(),
            )
        })?;
        f(&mut e)
    })
    .await
    .map_err(|e| Error::Thread(std::io::Error::other(e)))?
}

impl FirewallService {
    pub fn new(
        engine: Arc<Mutex<Engine>>,
        wake: Arc<Notify>,
        console_uid: Option<u32>,
    ) -> FirewallService {
        FirewallService {
            engine,
            wake,
            guard: LazyGuard::new(console_uid),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, BusError> {
        with_engine(&self.engine, f).await.map_err(to_bus)
    }

    /// authorize → audit → act, then wake the timer loop.
    async fn guarded<T: Send + 'static>(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        token: &str,
        action: Action<'_>,
        f: impl FnOnce(&mut Engine, &str) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, BusError> {
        let guard = self.guard.get(conn).await?;
        let engine = Arc::clone(&self.engine);
        let out = guard
            .run(header, token, action, |principal| async move {
                let name = principal.name().to_owned();
                with_engine(&engine, move |e| f(e, &name))
                    .await
                    .map_err(to_bus)
            })
            .await;
        self.wake.notify_one();
        out
    }
}

#[zbus::interface(name = "org.rampart.Firewall1")]
impl FirewallService {
    async fn status(&self) -> Result<Status, BusError> {
        self.read(|e| e.status()).await
    }

    async fn list(&self) -> Result<Vec<Rule>, BusError> {
        self.read(|e| Ok(e.list()?.iter().map(|r| r.to_wire()).collect()))
            .await
    }

    async fn unreviewed(&self) -> Result<Vec<Rule>, BusError> {
        self.read(|e| Ok(e.unreviewed(now())?.iter().map(|r| r.to_wire()).collect()))
            .await
    }

    async fn open(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        spec: RuleSpec,
    ) -> Result<Change, BusError> {
        // Validate before the guard so the audit record carries the normalised rule; the principal is filled
        // in when the rule is stored.
        let rule = self
            .read(move |e| e.validate_open(&spec, "", now()))
            .await?;
        let target = format!("{}/{}", rule.protocol.as_str(), rule.ports);
        let details = json!({
            "sources": rule.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "comment": rule.comment, "expires_at": rule.expires_at, "permanent_reason": rule.permanent_reason,
        });
        let action = Action {
            permission: "firewall.open",
            target: &target,
            details,
        };
        self.guarded(conn, &header, token, action, move |e, by| {
            let mut rule = rule;
            rule.added_by = by.to_owned();
            e.open_rule(rule, now())
        })
        .await
    }

    async fn close(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        rule_id: u64,
    ) -> Result<Change, BusError> {
        let target = format!("rule {rule_id}");
        let action = Action {
            permission: "firewall.close",
            target: &target,
            details: json!({}),
        };
        self.guarded(conn, &header, token, action, move |e, by| {
            e.close_rule(rule_id, by, now())
        })
        .await
    }

    async fn review(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        rule_id: u64,
    ) -> Result<(), BusError> {
        let target = format!("rule {rule_id}");
        let action = Action {
            permission: "firewall.review",
            target: &target,
            details: json!({}),
        };
        self.guarded(conn, &header, token, action, move |e, _| {
            e.review(rule_id, now())
        })
        .await
    }

    async fn set_ssh_access(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        access: SshAccess,
    ) -> Result<Change, BusError> {
        let ssh = Engine::validate_ssh(&access).map_err(to_bus)?;
        let wire = ssh.to_wire();
        let target = format!(
            "ssh ports {}",
            wire.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let action = Action {
            permission: "firewall.ssh-access",
            target: &target,
            details: json!({ "ports": wire.ports, "sources": wire.sources }),
        };
        self.guarded(conn, &header, token, action, move |e, by| {
            e.set_ssh(ssh, by, now())
        })
        .await
    }

    async fn confirm(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        change_id: u64,
    ) -> Result<(), BusError> {
        let target = format!("change {change_id}");
        let action = Action {
            permission: "firewall.confirm",
            target: &target,
            details: json!({}),
        };
        self.guarded(conn, &header, token, action, move |e, _| {
            e.confirm(change_id)
        })
        .await
    }

    async fn pending(&self) -> Result<Vec<PendingChange>, BusError> {
        self.read(|e| Ok(e.pending())).await
    }

    async fn bans(&self) -> Result<Vec<Ban>, BusError> {
        self.read(|e| {
            Ok(e.bans()?
                .into_iter()
                .map(|(a, left)| Ban {
                    address: a.to_string(),
                    expires_in: left,
                })
                .collect())
        })
        .await
    }

    async fn ban(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        address: &str,
        seconds: u64,
        reason: &str,
    ) -> Result<bool, BusError> {
        let addr = spec::address(address).map_err(BusError::InvalidArgument)?;
        let reason = spec::text("reason", reason, false).map_err(BusError::InvalidArgument)?;
        let target = addr.to_string();
        let action = Action {
            permission: "firewall.ban",
            target: &target,
            details: json!({ "seconds": seconds, "reason": reason }),
        };
        self.guarded(conn, &header, token, action, move |e, _| {
            e.ban(addr, seconds)
        })
        .await
    }

    async fn unban(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        address: &str,
    ) -> Result<(), BusError> {
        let addr = spec::address(address).map_err(BusError::InvalidArgument)?;
        let target = addr.to_string();
        let action = Action {
            permission: "firewall.unban",
            target: &target,
            details: json!({}),
        };
        self.guarded(conn, &header, token, action, move |e, _| e.unban(addr))
            .await
    }

    async fn allowlist(&self) -> Result<Vec<Allowed>, BusError> {
        self.read(|e| {
            Ok(e.allowlist()?
                .into_iter()
                .map(|a| Allowed {
                    cidr: a.cidr.to_string(),
                    comment: a.comment,
                    added_by: a.added_by,
                    added_at: a.added_at,
                })
                .collect())
        })
        .await
    }

    async fn allow(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        cidr: &str,
        comment: &str,
    ) -> Result<(), BusError> {
        let net = spec::cidr(cidr).map_err(BusError::InvalidArgument)?;
        let comment = spec::text("comment", comment, true).map_err(BusError::InvalidArgument)?;
        let target = net.to_string();
        let action = Action {
            permission: "firewall.allow",
            target: &target,
            details: json!({ "comment": comment }),
        };
        self.guarded(conn, &header, token, action, move |e, by| {
            let lifted = e.allow(AllowEntry {
                cidr: net,
                comment,
                added_by: by.to_owned(),
                added_at: now(),
            })?;
            if !lifted.is_empty() {
                log::info!("allowlisting {net} lifted {} ban(s)", lifted.len());
            }
            Ok(())
        })
        .await
    }

    async fn disallow(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        cidr: &str,
    ) -> Result<(), BusError> {
        let net = spec::cidr(cidr).map_err(BusError::InvalidArgument)?;
        let target = net.to_string();
        let action = Action {
            permission: "firewall.disallow",
            target: &target,
            details: json!({}),
        };
        self.guarded(conn, &header, token, action, move |e, _| e.disallow(net))
            .await
    }
}
