//! Everything webd knows comes from the other daemons over the system bus; this is the one place that talks to
//! them. Calls time out (a wedged daemon makes a page fail, not hang), and their errors keep the daemons' own
//! words, sorted into what the client did wrong, what it may not do, and what is broken.

use std::future::Future;
use std::time::Duration;

use hyper::StatusCode;
use rampart_common::units::UnitState;
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::firewall::FirewallProxy;
use rampart_interfaces::identity::IdentityProxy;
use rampart_interfaces::ssh::SshProxy;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A daemon's refusal or a failure to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The request was wrong (400); the message says how.
    Invalid(String),
    /// Not allowed, or the session is gone (403).
    Denied(String),
    /// A daemon is down or failed (503).
    Unavailable(String),
}

impl Fail {
    pub fn message(&self) -> &str {
        match self {
            Fail::Invalid(m) | Fail::Denied(m) | Fail::Unavailable(m) => m,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Fail::Invalid(_) => StatusCode::BAD_REQUEST,
            Fail::Denied(_) => StatusCode::FORBIDDEN,
            Fail::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<zbus::Error> for Fail {
    fn from(e: zbus::Error) -> Fail {
        match &e {
            zbus::Error::MethodError(name, text, _) => {
                let text = text.clone().unwrap_or_else(|| name.to_string());
                match name.as_str() {
                    "org.rampart.Error.InvalidArgument" => Fail::Invalid(text),
                    "org.rampart.Error.AccessDenied"
                    | "org.freedesktop.DBus.Error.AccessDenied" => Fail::Denied(text),
                    _ => Fail::Unavailable(text),
                }
            }
            other => Fail::Unavailable(other.to_string()),
        }
    }
}

/// Runs a bus call with the timeout.
pub async fn call<T>(f: impl Future<Output = zbus::Result<T>>) -> Result<T, Fail> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(Fail::from),
        Err(_) => Err(Fail::Unavailable(format!(
            "a Rampart daemon did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub identity: IdentityProxy<'static>,
    pub ssh: SshProxy<'static>,
    pub firewall: FirewallProxy<'static>,
    pub audit: AuditProxy<'static>,
    conn: zbus::Connection,
}

impl Backend {
    pub async fn new(conn: &zbus::Connection) -> zbus::Result<Backend> {
        Ok(Backend {
            identity: IdentityProxy::new(conn).await?,
            ssh: SshProxy::new(conn).await?,
            firewall: FirewallProxy::new(conn).await?,
            audit: AuditProxy::new(conn).await?,
            conn: conn.clone(),
        })
    }

    /// Every loaded Rampart service (and sshd) with its state.
    pub async fn health(&self) -> Result<Vec<UnitState>, Fail> {
        call(rampart_common::units::list(
            &self.conn,
            rampart_common::units::WATCHED,
        ))
        .await
    }
}
