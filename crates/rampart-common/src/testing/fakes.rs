//! Stand-ins for daemons a crate's own tests do not run for real: they speak the real interface (types from
//! rampart-interfaces) on the private bus, record what they were asked, and can be told what to answer.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use rampart_interfaces::firewall::{Rule, SshAccess, Status as FwStatus};
use rampart_interfaces::ssh::{
    Account, KeyInfo, PortChange, Status, PORT_AWAITING_LOGIN, PORT_IDLE,
};
use rampart_interfaces::Error as BusError;

use super::PrivateBus;

/// What the fake sshconfd holds and says.
#[derive(Debug, Default)]
pub struct SshState {
    /// (user, key line)
    pub keys: Vec<(String, String)>,
    pub port: u16,
    /// The port a change is moving to, awaiting a login.
    pub moving_to: Option<u16>,
    /// Whether a login on the new port "arrived" (ConfirmPort is refused until then).
    pub login_seen: bool,
    pub set_account: Vec<(String, bool, u64)>,
    /// Refuse SetAccount (as if sshconfd failed).
    pub refuse: bool,
    /// The session tokens mutating calls carried, in order (SetAccount's apart, in `account_tokens`).
    pub tokens: Vec<String>,
    pub account_tokens: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FakeSsh(pub Arc<Mutex<SshState>>);

fn change(s: &SshState) -> PortChange {
    PortChange {
        state: if s.moving_to.is_some() {
            PORT_AWAITING_LOGIN
        } else {
            PORT_IDLE
        }
        .into(),
        old_port: s.port,
        new_port: s.moving_to.unwrap_or(s.port),
        started_at: 0,
        deadline: if s.moving_to.is_some() {
            4_000_000_000
        } else {
            0
        },
        message: String::new(),
        login_seen: s.moving_to.is_some() && s.login_seen,
    }
}

#[zbus::interface(name = "org.rampart.Ssh1")]
impl FakeSsh {
    async fn status(&self) -> Result<Status, BusError> {
        let s = self.0.lock().unwrap();
        Ok(Status {
            port: s.port,
            listening: [Some(s.port), s.moving_to]
                .into_iter()
                .flatten()
                .filter(|p| *p != 0)
                .collect(),
            change: change(&s),
            keys: s.keys.len() as u64,
        })
    }

    async fn keys(&self, user: &str) -> Result<Vec<KeyInfo>, BusError> {
        let s = self.0.lock().unwrap();
        Ok(s.keys
            .iter()
            .filter(|(u, _)| user.is_empty() || u == user)
            .map(|(u, line)| KeyInfo {
                user: u.clone(),
                fingerprint: format!("SHA256:fake{}", line.len()),
                algorithm: line.split(' ').next().unwrap_or("").into(),
                bits: 256,
                comment: String::new(),
                added_by: String::new(),
                added_at: 0,
                last_used: 0,
                expires_at: 0,
            })
            .collect())
    }

    async fn add_key(
        &self,
        token: &str,
        user: &str,
        key_line: &str,
        _comment: &str,
        _expires_at: u64,
    ) -> Result<KeyInfo, BusError> {
        let mut s = self.0.lock().unwrap();
        s.tokens.push(token.into());
        if !key_line.starts_with("ssh-ed25519 AAAA") {
            return Err(BusError::InvalidArgument(format!(
                "{key_line:?} is not an OpenSSH public key line"
            )));
        }
        s.keys.push((user.into(), key_line.into()));
        Ok(KeyInfo {
            user: user.into(),
            fingerprint: "SHA256:fake".into(),
            algorithm: "ssh-ed25519".into(),
            bits: 256,
            comment: String::new(),
            added_by: String::new(),
            added_at: 0,
            last_used: 0,
            expires_at: 0,
        })
    }

    async fn remove_key(&self, token: &str, fingerprint: &str) -> Result<(), BusError> {
        let mut s = self.0.lock().unwrap();
        s.tokens.push(token.into());
        let before = s.keys.len();
        s.keys
            .retain(|(_, line)| format!("SHA256:fake{}", line.len()) != fingerprint);
        if s.keys.len() == before {
            return Err(BusError::InvalidArgument(format!(
                "no stored key has fingerprint {fingerprint}"
            )));
        }
        Ok(())
    }

    async fn set_port(&self, token: &str, port: u16) -> Result<PortChange, BusError> {
        let mut s = self.0.lock().unwrap();
        s.tokens.push(token.into());
        if port < 1024 {
            return Err(BusError::InvalidArgument(format!(
                "port {port} is below 1024"
            )));
        }
        s.moving_to = Some(port);
        s.login_seen = false;
        Ok(change(&s))
    }

    async fn confirm_port(&self, token: &str) -> Result<PortChange, BusError> {
        let mut s = self.0.lock().unwrap();
        s.tokens.push(token.into());
        let Some(new) = s.moving_to else {
            return Err(BusError::Failed("no port change in progress".into()));
        };
        if !s.login_seen {
            return Err(BusError::Failed(format!(
                "no public-key login has arrived on port {new} yet"
            )));
        }
        s.port = new;
        s.moving_to = None;
        Ok(change(&s))
    }

    async fn cancel_port(&self, token: &str) -> Result<PortChange, BusError> {
        let mut s = self.0.lock().unwrap();
        s.tokens.push(token.into());
        s.moving_to = None;
        Ok(change(&s))
    }

    async fn set_account(
        &self,
        token: &str,
        user: &str,
        enabled: bool,
        expires_at: u64,
    ) -> Result<Account, BusError> {
        let mut s = self.0.lock().unwrap();
        s.account_tokens.push(token.into());
        if s.refuse {
            return Err(BusError::Failed("fake sshconfd told to refuse".into()));
        }
        s.set_account.push((user.into(), enabled, expires_at));
        Ok(Account {
            user: user.into(),
            enabled,
            expires_at,
        })
    }
}

/// A fake firewalld that answers the panel's reads.
#[derive(Debug, Clone, Default)]
pub struct FakeFirewall(pub Arc<Mutex<Vec<Rule>>>);

#[zbus::interface(name = "org.rampart.Firewall1")]
impl FakeFirewall {
    async fn status(&self) -> Result<FwStatus, BusError> {
        Ok(FwStatus {
            ssh: SshAccess {
                ports: vec![22],
                sources: vec![],
            },
            rules: self.0.lock().unwrap().len() as u64,
            bans: 0,
            pending_changes: 0,
            last_reconciled: 0,
        })
    }

    async fn list(&self) -> Result<Vec<Rule>, BusError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// Serves `iface` at `path` under the well-known `name` on `bus`; keep the connection alive as long as needed.
pub async fn serve<I: zbus::object_server::Interface>(
    bus: &PrivateBus,
    name: &str,
    path: &str,
    iface: I,
) -> zbus::Connection {
    bus.builder()
        .serve_at(path, iface)
        .unwrap()
        .name(name.to_owned())
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// A fake sshconfd on `bus`.
pub async fn fake_ssh(bus: &PrivateBus) -> (zbus::Connection, Arc<Mutex<SshState>>) {
    let state = Arc::new(Mutex::new(SshState::default()));
    let conn = serve(
        bus,
        rampart_interfaces::ssh::BUS_NAME,
        rampart_interfaces::ssh::OBJECT_PATH,
        FakeSsh(Arc::clone(&state)),
    )
    .await;
    (conn, state)
}
