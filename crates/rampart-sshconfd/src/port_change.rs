//! Moving SSH to another port without ever locking the administrator out (DESIGN.md rule 4).
//!
//! ```text
//!  Idle ──SetPort──▶ Opening ──firewall opens old+new, sshd listens on both──▶ AwaitingLogin
//!                      │ any step fails / restart                                 │ ConfirmPort, after a
//!                      ▼                                                          │ key login on the new port
//!                   revert ◀── deadline / CancelPort / a step fails ──────────────┤
//!                      │                                                          ▼
//!                      ▼                                    Closing: sshd on new only, firewall new only
//!              Idle (old port)                                         │ (a restart resumes it)
//!                                                                      ▼
//!                                                               Idle (new port)
//! ```
//!
//! Each state is written to SQLite *before* its actions run, so a restart knows what may be half-done: `Opening`
//! is reverted, `AwaitingLogin` keeps waiting for its deadline, `Closing` is finished (the login on the new port
//! was already proven). The configured port changes only when a change is done. A revert puts back the sshd
//! drop-in for the old port and the firewall's SSH ports as they were before the change; it is audited.
//!
//! Evidence of a login: the `Connection from … on … port NEW` line and the `Accepted publickey` line of the same
//! connection, recorded by [`crate::logins`] into `port_logins`. Asking the admin to type `confirm` on the new
//! port alone would prove nothing: the command can be run from the old session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_interfaces::audit::{AuditProxy, NewRecord};
use rampart_interfaces::firewall::{FirewallProxy, SshAccess};
use rampart_interfaces::ssh::{self, PortChange};
use rusqlite::Connection;

use crate::config::{self, KeysCommand, Listen};
use crate::error::Error;
use crate::sshd::Sshd;
use crate::store;

/// Ports an SSH daemon must not take: below 1024 everything is refused; above, the well-known ports of services a
/// hosting machine is likely to run (or be scanned for), so that SSH never hides behind or collides with them.
pub const WELL_KNOWN_PORTS: &[(u16, &str)] = &[
    (1080, "SOCKS"),
    (1433, "Microsoft SQL Server"),
    (1521, "Oracle"),
    (2049, "NFS"),
    (2375, "Docker"),
    (2376, "Docker (TLS)"),
    (3306, "MySQL/MariaDB"),
    (3389, "RDP"),
    (5432, "PostgreSQL"),
    (5672, "AMQP"),
    (5900, "VNC"),
    (6379, "Redis"),
    (6443, "Kubernetes API"),
    (8000, "HTTP (alternate)"),
    (8080, "HTTP (alternate)"),
    (8443, "HTTPS (alternate)"),
    (9090, "Prometheus"),
    (9200, "Elasticsearch"),
    (9300, "Elasticsearch"),
    (11211, "memcached"),
    (27017, "MongoDB"),
];

/// How long one firewalld call may take.
const FIREWALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The principal of changes the daemon makes on its own (deadline reverts).
pub const SELF_PRINCIPAL: &str = "service:rampart-sshconfd";

/// Checks a requested port; the error names the service that owns it.
pub fn check_port(port: u16) -> Result<u16, String> {
    if port < 1024 {
        return Err(format!(
            "port {port} is below 1024 (well-known services, and 22 is what every scanner tries); pick one in \
             1024..65535 that nothing else uses, e.g. 40022"
        ));
    }
    if let Some((_, service)) = WELL_KNOWN_PORTS.iter().find(|(p, _)| *p == port) {
        return Err(format!(
            "port {port} belongs to {service}; pick another, e.g. 40022"
        ));
    }
    Ok(port)
}

/// A change in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// None: no port was set (sshd on 127.0.0.1:22 only).
    pub old: Option<u16>,
    pub new: u16,
    pub started_at: u64,
    pub deadline: u64,
    /// The firewall's SSH ports and sources before the change, to put back on revert.
    pub firewall_ports: Vec<u16>,
    pub firewall_sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Idle,
    Opening(Change),
    AwaitingLogin(Change),
    Closing(Change),
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => ssh::PORT_IDLE,
            State::Opening(_) => ssh::PORT_OPENING,
            State::AwaitingLogin(_) => ssh::PORT_AWAITING_LOGIN,
            State::Closing(_) => ssh::PORT_CLOSING,
        }
    }

    pub fn from_parts(name: &str, change: Change) -> Option<State> {
        Some(match name {
            ssh::PORT_IDLE => State::Idle,
            ssh::PORT_OPENING => State::Opening(change),
            ssh::PORT_AWAITING_LOGIN => State::AwaitingLogin(change),
            ssh::PORT_CLOSING => State::Closing(change),
            _ => return None,
        })
    }

    pub fn change(&self) -> Option<&Change> {
        match self {
            State::Idle => None,
            State::Opening(c) | State::AwaitingLogin(c) | State::Closing(c) => Some(c),
        }
    }
}

/// The persisted record: the configured port and the change state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRecord {
    pub port: Option<u16>,
    pub state: State,
    /// What happens next, or how the last change ended.
    pub message: String,
}

impl PortRecord {
    /// Where sshd listens in this state.
    pub fn listen(&self) -> Vec<Listen> {
        let at = |p: Option<u16>| p.map_or(Listen::LoopbackOnly, Listen::Port);
        match &self.state {
            State::Idle => vec![at(self.port)],
            State::Opening(c) | State::AwaitingLogin(c) => vec![at(c.old), Listen::Port(c.new)],
            State::Closing(c) => vec![Listen::Port(c.new)],
        }
    }

    pub fn listening_ports(&self) -> Vec<u16> {
        self.listen()
            .iter()
            .map(|l| match l {
                Listen::LoopbackOnly => 22,
                Listen::Port(p) => *p,
            })
            .collect()
    }

    pub fn to_wire(&self) -> PortChange {
        let empty = Change::default();
        let c = self.state.change().unwrap_or(&empty);
        PortChange {
            state: self.state.name().to_owned(),
            old_port: c.old.unwrap_or(0),
            new_port: c.new,
            started_at: c.started_at,
            deadline: c.deadline,
            message: self.message.clone(),
            login_seen: false,
        }
    }
}

pub use rampart_common::clock::now;

/// Runs port changes, one at a time.
#[derive(Debug)]
pub struct Ports {
    db: Arc<Mutex<Connection>>,
    sshd: Sshd,
    keys: KeysCommand,
    window: Duration,
    bus: zbus::Connection,
    busy: tokio::sync::Mutex<()>,
}

impl Ports {
    pub fn new(
        db: Arc<Mutex<Connection>>,
        sshd: Sshd,
        keys: KeysCommand,
        window: Duration,
        bus: zbus::Connection,
    ) -> Ports {
        Ports {
            db,
            sshd,
            keys,
            window,
            bus,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    fn with_db<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self
            .db
            .lock()
            .map_err(|_| Error::Task("the database lock is poisoned".into()))?;
        tokio::task::block_in_place(|| f(&conn))
    }

    pub fn record(&self) -> Result<PortRecord, Error> {
        self.with_db(store::load_port)
    }

    fn save(&self, rec: &PortRecord) -> Result<(), Error> {
        self.with_db(|c| store::save_port(c, rec))?;
        rampart_common::notify::status(&status_line(rec));
        Ok(())
    }

    async fn apply_config(&self, rec: &PortRecord) -> Result<(), Error> {
        self.sshd
            .apply(&self.bus, &config::render(&rec.listen(), &self.keys))
            .await
    }

    /// At start-up: finish or undo what a previous run left half-done, then make sure the drop-in on disk is the
    /// one the database implies (a new version may render it differently).
    pub async fn resume(&self) -> Result<(), Error> {
        let _busy = self.busy.lock().await;
        let rec = self.record()?;
        match &rec.state {
            State::Opening(c) => {
                self.revert(
                    c.clone(),
                    "",
                    "the daemon restarted while opening the new port",
                )
                .await;
            }
            State::Closing(c) => {
                if let Err(e) = self.close(rec.clone(), c.clone(), "").await {
                    log::error!("finishing the port change after a restart failed: {e}");
                }
            }
            State::Idle | State::AwaitingLogin(_) => {}
        }
        let rec = self.record()?;
        self.apply_config(&rec).await?;
        rampart_common::notify::status(&status_line(&rec));
        Ok(())
    }

    /// `SetPort`: open the firewall for both ports, make sshd listen on both, then wait for a login.
    pub async fn set_port(&self, token: &str, new: u16) -> Result<PortChange, Error> {
        let new = check_port(new).map_err(Error::Invalid)?;
        let _busy = self.busy.lock().await;
        let rec = self.record()?;
        if let Some(c) = rec.state.change() {
            return Err(Error::Refused(format!(
                "a change to port {} is in progress ({}); confirm or cancel it first",
                c.new,
                rec.state.name()
            )));
        }
        if rec.port == Some(new) {
            return Err(Error::Invalid(format!("SSH already listens on port {new}")));
        }
        let firewall = self.firewall().await?;
        let before = call(firewall.status()).await?.ssh;
        let started_at = now();
        let change = Change {
            old: rec.port,
            new,
            started_at,
            deadline: started_at + self.window.as_secs(),
            firewall_ports: before.ports.clone(),
            firewall_sources: before.sources.clone(),
        };
        let opening = PortRecord {
            port: rec.port,
            state: State::Opening(change.clone()),
            message: format!("opening port {new} in the firewall and in sshd"),
        };
        self.save(&opening)?;
        let mut ports = before.ports.clone();
        if !ports.contains(&new) {
            ports.push(new);
        }
        let step = async {
            self.set_firewall(&firewall, token, ports, &before.sources)
                .await?;
            let both = PortRecord {
                state: State::AwaitingLogin(change.clone()),
                ..opening.clone()
            };
            self.apply_config(&both).await
        };
        if let Err(e) = step.await {
            let text = rampart_common::error::chain(&e);
            self.revert(change, token, &format!("opening port {new} failed: {text}"))
                .await;
            return Err(e);
        }
        let waiting = PortRecord {
            port: rec.port,
            state: State::AwaitingLogin(change.clone()),
            message: format!(
                "log in with your key on port {new} from a new connection, then run `rampartctl ssh confirm` there \
                 within {} minutes; otherwise port {} stays and {new} closes again",
                self.window.as_secs() / 60,
                rec.port.map_or_else(|| "22 (local only)".to_owned(), |p| p.to_string())
            ),
        };
        self.save(&waiting)?;
        Ok(waiting.to_wire())
    }

    /// Whether a public-key login arrived on the new port of the change in progress since it began.
    pub fn login_seen(&self, rec: &PortRecord) -> Result<bool, Error> {
        let State::AwaitingLogin(c) = &rec.state else {
            return Ok(false);
        };
        Ok(self.with_db(|db| store::last_login_on(db, c.new))? >= c.started_at)
    }

    /// `ConfirmPort`: only after a public-key login arrived on the new port since the change began.
    pub async fn confirm(&self, token: &str) -> Result<PortChange, Error> {
        let _busy = self.busy.lock().await;
        let rec = self.record()?;
        let State::AwaitingLogin(c) = &rec.state else {
            return Err(Error::Refused(format!(
                "no port change is waiting for confirmation (state: {}); start one with `rampartctl ssh port N`",
                rec.state.name()
            )));
        };
        let seen = self.with_db(|db| store::last_login_on(db, c.new))?;
        if seen < c.started_at {
            return Err(Error::Refused(format!(
                "log in on port {} first: no public-key login has arrived on port {} since the change began \
                 (ssh -p {} user@host), then confirm from that session",
                c.new, c.new, c.new
            )));
        }
        self.close(rec.clone(), c.clone(), token).await?;
        self.record().map(|r| r.to_wire())
    }

    /// `CancelPort`.
    pub async fn cancel(&self, token: &str, principal: &str) -> Result<PortChange, Error> {
        let _busy = self.busy.lock().await;
        let rec = self.record()?;
        match &rec.state {
            State::Opening(c) | State::AwaitingLogin(c) => {
                self.revert(c.clone(), token, &format!("cancelled by {principal}"))
                    .await;
                self.record().map(|r| r.to_wire())
            }
            other => Err(Error::Refused(format!(
                "no port change to cancel (state: {})",
                other.name()
            ))),
        }
    }

    /// Reverts a change whose deadline passed. Called about once a second.
    pub async fn tick(&self) {
        let Ok(_busy) = self.busy.try_lock() else {
            return;
        };
        let rec = match self.record() {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot read the port state: {e}");
                return;
            }
        };
        if let State::AwaitingLogin(c) = &rec.state {
            if now() >= c.deadline {
                let reason = format!("port {} was not confirmed in time", c.new);
                self.revert(c.clone(), "", &reason).await;
            }
        }
    }

    /// Closing: sshd on the new port only, then the firewall; any failure reverts to the old port.
    async fn close(&self, rec: PortRecord, c: Change, token: &str) -> Result<(), Error> {
        let closing = PortRecord {
            port: rec.port,
            state: State::Closing(c.clone()),
            message: format!("closing the old port; SSH moves to {}", c.new),
        };
        self.save(&closing)?;
        let step = async {
            self.apply_config(&closing).await?;
            let firewall = self.firewall().await?;
            self.set_firewall(&firewall, token, vec![c.new], &c.firewall_sources)
                .await
        };
        if let Err(e) = step.await {
            let text = rampart_common::error::chain(&e);
            self.revert(c, token, &format!("closing the old port failed: {text}"))
                .await;
            return Err(e);
        }
        let done = PortRecord {
            port: Some(c.new),
            state: State::Idle,
            message: format!(
                "SSH moved from port {} to {} at {}",
                c.old
                    .map_or_else(|| "22 (local only)".to_owned(), |p| p.to_string()),
                c.new,
                now()
            ),
        };
        self.save(&done)
    }

    /// Puts sshd and the firewall back as they were before `c`, as far as possible, and records how it went.
    async fn revert(&self, c: Change, token: &str, reason: &str) {
        log::warn!("reverting the SSH port change to {}: {reason}", c.new);
        let back = PortRecord {
            port: c.old,
            state: State::Idle,
            message: String::new(),
        };
        let mut problems = Vec::new();
        if let Err(e) = self.apply_config(&back).await {
            problems.push(format!("sshd: {}", rampart_common::error::chain(&e)));
        }
        let firewall = async {
            let fw = self.firewall().await?;
            self.set_firewall(&fw, token, c.firewall_ports.clone(), &c.firewall_sources)
                .await
        };
        if let Err(e) = firewall.await {
            problems.push(format!("firewall: {}", rampart_common::error::chain(&e)));
        }
        let old = c
            .old
            .map_or_else(|| "22 (local only)".to_owned(), |p| p.to_string());
        let message = if problems.is_empty() {
            format!("reverted to port {old}: {reason}")
        } else {
            format!(
                "reverted to port {old} with problems ({}): {reason}",
                problems.join("; ")
            )
        };
        let back = PortRecord {
            message: message.clone(),
            ..back
        };
        if let Err(e) = self.save(&back) {
            // The record still says the change is in flight: the next tick or start-up retries the revert.
            log::error!("cannot record the revert: {e}");
        }
        self.audit(
            "ssh.port-revert",
            &format!("port {}", c.new),
            problems.is_empty(),
            &message,
        )
        .await;
    }

    async fn firewall(&self) -> Result<FirewallProxy<'static>, Error> {
        FirewallProxy::new(&self.bus)
            .await
            .map_err(|e| Error::Firewall(e.to_string()))
    }

    /// `SetSshAccess`; a lockout-prone change is confirmed at once — the caller has already proven (or, on
    /// revert, is returning to) a working port.
    async fn set_firewall(
        &self,
        fw: &FirewallProxy<'_>,
        token: &str,
        ports: Vec<u16>,
        sources: &[String],
    ) -> Result<(), Error> {
        let access = SshAccess {
            ports,
            sources: sources.to_vec(),
        };
        let change = call(fw.set_ssh_access(token, &access)).await?;
        if change.confirm_by != 0 {
            call(fw.confirm(token, change.change_id)).await?;
        }
        Ok(())
    }

    async fn audit(&self, action: &str, target: &str, ok: bool, message: &str) {
        let record = NewRecord {
            actor: SELF_PRINCIPAL.to_owned(),
            peer: String::new(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: if ok { "allowed" } else { "failed" }.to_owned(),
            details: serde_json::json!({ "message": message }).to_string(),
        };
        let result = async { AuditProxy::new(&self.bus).await?.record(&record).await }.await;
        if let Err(e) = result {
            log::error!("could not audit {action} ({message}): {e}");
        }
    }
}

async fn call<T>(f: impl std::future::Future<Output = zbus::Result<T>>) -> Result<T, Error> {
    match tokio::time::timeout(FIREWALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Firewall(rampart_interfaces::error::message(&e))),
        Err(_) => Err(Error::Firewall(format!(
            "no answer within {} s; check `systemctl status rampart-firewalld`",
            FIREWALL_TIMEOUT.as_secs()
        ))),
    }
}

/// The sd_notify STATUS line for a record.
pub fn status_line(rec: &PortRecord) -> String {
    match (&rec.state, rec.port) {
        (State::Idle, None) => "no SSH port set: sshd listens on 127.0.0.1:22 only".to_owned(),
        (State::Idle, Some(p)) => format!("sshd on port {p}"),
        (State::Opening(c), _) => format!("opening port {}", c.new),
        (State::AwaitingLogin(c), _) => format!(
            "waiting for a login on port {} (deadline {})",
            c.new, c.deadline
        ),
        (State::Closing(c), _) => format!("closing the old port, moving to {}", c.new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_below_1024_and_well_known_services_are_refused() {
        for p in [
            0, 22, 80, 443, 1023, 3306, 5432, 6379, 8080, 8443, 9200, 11211, 27017,
        ] {
            assert!(check_port(p).is_err(), "{p} accepted");
        }
        assert!(check_port(3306).unwrap_err().contains("MySQL"));
        for p in [1024, 2222, 40022, 65535] {
            assert_eq!(check_port(p), Ok(p));
        }
    }

    #[test]
    fn listening_follows_the_state() {
        let c = Change {
            old: Some(2222),
            new: 40022,
            ..Change::default()
        };
        let rec = |state| PortRecord {
            port: Some(2222),
            state,
            message: String::new(),
        };
        assert_eq!(rec(State::Idle).listening_ports(), [2222]);
        assert_eq!(
            rec(State::Opening(c.clone())).listening_ports(),
            [2222, 40022]
        );
        assert_eq!(
            rec(State::AwaitingLogin(c.clone())).listening_ports(),
            [2222, 40022]
        );
        assert_eq!(rec(State::Closing(c.clone())).listening_ports(), [40022]);
        let fresh = PortRecord::default();
        assert_eq!(fresh.listen(), [Listen::LoopbackOnly]);
        let first = PortRecord {
            state: State::AwaitingLogin(Change { old: None, ..c }),
            ..fresh
        };
        assert_eq!(first.listen(), [Listen::LoopbackOnly, Listen::Port(40022)]);
    }
}
