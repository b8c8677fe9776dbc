//! authorize → audit → act: the only way a mutating D-Bus method runs (DESIGN.md rule 2).
//!
//! 1. **Authorize** the caller — the bus daemon's credentials plus the session token the caller passes — for a
//!    named permission (e.g. `firewall.open`, catalogued in `rampart_interfaces::identity::PERMISSIONS`). Without
//!    a token the only principal is `root@console`: uid 0. With a token, rampart-identityd says whose session it
//!    is and whether its role holds the permission (`org.rampart.Identity1.Authorize`). Besides people, a few
//!    daemons act on their own (guardd bans brute-forcers): each is listed in [`SERVICES`] with its static user and
//!    the only permissions it holds, and acts as principal `service:<daemon>`.
//! 2. **Audit** the decision in rampart-auditd. A denial is audited too. If the audit record cannot be written the
//!    action does not run: an unaudited change is worse than a refused one.
//! 3. **Act**. If the act fails, a `failed` record follows with the error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rampart_interfaces::audit::{AuditProxy, NewRecord, Outcome};
use rampart_interfaces::identity::IdentityProxy;
use rampart_interfaces::Error as BusError;
use serde_json::{json, Value};
use zbus::message::Header;
use zbus::Connection;

use crate::bus::Caller;

/// The principal of root logged in on the machine's console (or a root shell).
pub const ROOT_CONSOLE: &str = "root@console";

/// Daemons that call other daemons' guarded methods on their own behalf: (static user from sysusers.d,
/// principal name, permissions). Anything not listed here is refused to them like to any other user.
pub const SERVICES: &[(&str, &str, &[&str])] = &[
    ("rampart-guard", "service:rampart-guardd", &["firewall.ban"]),
    // identityd keeps sshd's view of an account (enabled, expiry) in step with the account's.
    (
        "rampart-identity",
        "service:rampart-identityd",
        &["ssh.account"],
    ),
];

/// How long a guarded method waits for the audit log before refusing (proxies have no timeout of their own).
pub const AUDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An authenticated, authorized actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(String);

impl Principal {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// A future answering "whose token is this, and may they do that?": `Ok(principal name)` or `Err(reason)`.
pub type TokenCheck = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// How session tokens are checked: by rampart-identityd over the bus, or — inside identityd itself, which cannot
/// wait on its own bus method — by a function of (token, permission).
#[derive(Clone)]
enum Tokens {
    Bus(IdentityProxy<'static>),
    Local(Arc<dyn Fn(String, String) -> TokenCheck + Send + Sync>),
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tokens::Bus(_) => "Tokens::Bus",
            Tokens::Local(_) => "Tokens::Local",
        })
    }
}

/// What a method is about to do, for authorization and the audit record.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// The permission the method needs, named `<daemon>.<verb>`.
    pub permission: &'a str,
    /// What it applies to, e.g. `tcp/8080`.
    pub target: &'a str,
    /// Parsed arguments worth keeping (a JSON object). Never secrets.
    pub details: Value,
}

/// Holds what every guarded call needs: the daemon's bus connection and a proxy to the audit log.
#[derive(Debug, Clone)]
pub struct Guard {
    conn: Connection,
    audit: AuditProxy<'static>,
    tokens: Tokens,
    console_uid: u32,
    /// uid → index into [`SERVICES`], resolved once from the user database.
    services: Vec<(u32, usize)>,
}

impl Guard {
    pub async fn new(conn: &Connection) -> Result<Guard, zbus::Error> {
        Ok(Guard {
            conn: conn.clone(),
            audit: AuditProxy::new(conn).await?,
            tokens: Tokens::Bus(IdentityProxy::new(conn).await?),
            console_uid: 0,
            services: SERVICES
                .iter()
                .enumerate()
                .filter_map(|(i, (user, _, _))| {
                    let uid = nix::unistd::User::from_name(user).ok().flatten()?.uid;
                    Some((uid.as_raw(), i))
                })
                .collect(),
        })
    }

    /// Checks tokens with `check` instead of asking rampart-identityd over the bus (identityd's own guard).
    pub fn with_local_tokens(
        mut self,
        check: impl Fn(String, String) -> TokenCheck + Send + Sync + 'static,
    ) -> Guard {
        self.tokens = Tokens::Local(Arc::new(check));
        self
    }

    /// Treats `uid` as the console's root. Only for tests that cannot run as root.
    pub fn with_console_uid(mut self, uid: u32) -> Guard {
        self.console_uid = uid;
        self
    }

    /// Treats `uid` as the user of the [`SERVICES`] entry named `principal`. Only for tests.
    pub fn with_service_uid(mut self, principal: &str, uid: u32) -> Guard {
        if let Some(i) = SERVICES.iter().position(|(_, name, _)| *name == principal) {
            self.services.retain(|(u, _)| *u != uid);
            self.services.push((uid, i));
        }
        self
    }

    /// Runs `act` if and only if the caller is authorized and the decision is on the audit log.
    pub async fn run<T, F, Fut>(
        &self,
        header: &Header<'_>,
        token: &str,
        action: Action<'_>,
        act: F,
    ) -> Result<T, BusError>
    where
        F: FnOnce(Principal) -> Fut,
        Fut: Future<Output = Result<T, BusError>>,
    {
        let caller = Caller::of(&self.conn, header)
            .await
            .map_err(|e| BusError::Failed(format!("cannot identify the caller on the bus: {e}")))?;
        let principal = match self.authorize(&caller, token, action.permission).await {
            Ok(principal) => principal,
            Err(reason) => {
                let actor = if token.is_empty() {
                    caller.describe()
                } else {
                    "session".to_owned()
                };
                let extra = json!({ "reason": reason });
                if let Err(e) = self
                    .record(&actor, &caller, &action, Outcome::Denied, extra)
                    .await
                {
                    log::error!("could not audit a denied {}: {e}", action.permission);
                }
                return Err(BusError::AccessDenied(reason));
            }
        };
        self.record(
            principal.name(),
            &caller,
            &action,
            Outcome::Allowed,
            Value::Null,
        )
        .await
        .map_err(|e| {
            BusError::Failed(format!(
                "the audit log did not accept the record, so nothing was done: {e}"
            ))
        })?;
        match act(principal.clone()).await {
            Ok(value) => Ok(value),
            Err(err) => {
                let extra = json!({ "error": error_text(&err) });
                if let Err(e) = self
                    .record(principal.name(), &caller, &action, Outcome::Failed, extra)
                    .await
                {
                    log::error!("could not audit a failed {}: {e}", action.permission);
                }
                Err(err)
            }
        }
    }

    /// Whether the caller is root on the console (uid 0, or the tests' stand-in): for the few methods only the
    /// machine's own console may call (they need physical presence or show secrets meant for it).
    pub async fn caller_is_console(&self, header: &Header<'_>) -> Result<bool, BusError> {
        let caller = Caller::of(&self.conn, header)
            .await
            .map_err(|e| BusError::Failed(format!("cannot identify the caller on the bus: {e}")))?;
        Ok(caller.uid == Some(self.console_uid))
    }

    /// Audits an event that is not a guarded method: an authentication attempt (`actor` is who it claimed to be)
    /// or something the daemon did on its own (`header` None: the daemon itself is the peer). Returns the audit
    /// log's error, so a caller can refuse to go on unaudited.
    pub async fn record_event(
        &self,
        header: Option<&Header<'_>>,
        actor: &str,
        action: Action<'_>,
        outcome: Outcome,
    ) -> Result<(), BusError> {
        let caller = match header {
            Some(h) => Caller::of(&self.conn, h).await.map_err(|e| {
                BusError::Failed(format!("cannot identify the caller on the bus: {e}"))
            })?,
            None => Caller {
                unique_name: self
                    .conn
                    .unique_name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                uid: Some(nix::unistd::getuid().as_raw()),
                pid: Some(std::process::id()),
            },
        };
        self.record(actor, &caller, &action, outcome, Value::Null)
            .await
            .map_err(|e| BusError::Failed(format!("the audit log did not accept the record: {e}")))
    }

    async fn authorize(
        &self,
        caller: &Caller,
        token: &str,
        permission: &str,
    ) -> Result<Principal, String> {
        if !token.is_empty() {
            return self.check_token(token, permission).await.map(Principal);
        }
        if caller.uid == Some(self.console_uid) {
            return Ok(Principal(ROOT_CONSOLE.to_owned()));
        }
        let service = self
            .services
            .iter()
            .find(|(uid, _)| Some(*uid) == caller.uid)
            .and_then(|(_, i)| SERVICES.get(*i));
        if let Some((_, name, permissions)) = service {
            if permissions.contains(&permission) {
                return Ok(Principal((*name).to_owned()));
            }
            return Err(format!(
                "{permission}: {name} holds only {}",
                permissions.join(", ")
            ));
        }
        Err(format!(
            "{permission}: only root on the console, or a session whose role allows it, may do this ({} is not \
             root and passed no session token)",
            caller.describe()
        ))
    }

    async fn check_token(&self, token: &str, permission: &str) -> Result<String, String> {
        let check = match &self.tokens {
            Tokens::Local(check) => check(token.to_owned(), permission.to_owned()),
            Tokens::Bus(identity) => {
                let identity = identity.clone();
                let (token, permission) = (token.to_owned(), permission.to_owned());
                Box::pin(async move {
                    match identity.authorize(&token, &permission).await {
                        Ok(principal) => Ok(principal.name),
                        Err(zbus::Error::MethodError(name, Some(text), _))
                            if name.as_str() == "org.rampart.Error.AccessDenied" =>
                        {
                            Err(text)
                        }
                        Err(e) => Err(format!(
                            "{permission}: the session could not be checked (rampart-identityd: {}); nothing was done",
                            rampart_interfaces::error::message(&e)
                        )),
                    }
                })
            }
        };
        match tokio::time::timeout(AUDIT_TIMEOUT, check).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{permission}: rampart-identityd did not answer within {} s; nothing was done",
                AUDIT_TIMEOUT.as_secs()
            )),
        }
    }

    async fn record(
        &self,
        actor: &str,
        caller: &Caller,
        action: &Action<'_>,
        outcome: Outcome,
        extra: Value,
    ) -> Result<(), zbus::Error> {
        // Details are an object; anything else is kept under "details" rather than dropped.
        let mut details = match action.details.clone() {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("details".to_owned(), other)]),
        };
        if let Value::Object(more) = extra {
            for (key, value) in more {
                // The guard's own keys never overwrite the caller's: they get a "guard." prefix on collision.
                let key = if details.contains_key(&key) {
                    format!("guard.{key}")
                } else {
                    key
                };
                details.insert(key, value);
            }
        }
        let record = NewRecord {
            actor: actor.to_owned(),
            peer: caller.describe(),
            action: action.permission.to_owned(),
            target: action.target.to_owned(),
            outcome: outcome.as_str().to_owned(),
            details: Value::Object(details).to_string(),
        };
        match tokio::time::timeout(AUDIT_TIMEOUT, self.audit.record(&record)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(zbus::Error::Failure(format!(
                "rampart-auditd did not answer within {} s; check `systemctl status rampart-auditd`",
                AUDIT_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// A [`Guard`] made on first use, for services exported before their connection exists (see `bus::serve`): the
/// first guarded call builds it from the connection the call came in on.
#[derive(Debug, Default)]
pub struct LazyGuard {
    cell: tokio::sync::OnceCell<Guard>,
    console_uid: Option<u32>,
}

impl LazyGuard {
    /// `console_uid` overrides who counts as root on the console (tests that cannot run as root).
    pub fn new(console_uid: Option<u32>) -> LazyGuard {
        LazyGuard {
            cell: tokio::sync::OnceCell::new(),
            console_uid,
        }
    }

    pub async fn get(&self, conn: &Connection) -> Result<&Guard, BusError> {
        self.cell
            .get_or_try_init(|| async {
                let guard = Guard::new(conn)
                    .await
                    .map_err(|e| BusError::Failed(format!("cannot reach the audit log: {e}")))?;
                Ok(match self.console_uid {
                    Some(uid) => guard.with_console_uid(uid),
                    None => guard,
                })
            })
            .await
    }
}

fn error_text(err: &BusError) -> String {
    match err {
        BusError::ZBus(e) => e.to_string(),
        BusError::InvalidArgument(m) | BusError::AccessDenied(m) | BusError::Failed(m) => m.clone(),
    }
}
