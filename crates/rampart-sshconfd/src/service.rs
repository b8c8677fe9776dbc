//! The `org.rampart.Ssh1` object: arguments are parsed into checked values here, mutations go through the guard
//! (authorize → audit → act), the work is in [`crate::store`] and [`crate::port_change`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rampart_common::guard::{Action, Guard};
use rampart_interfaces::ssh::{Account, HostKey, KeyInfo, PortChange, Status};
use rampart_interfaces::Error as BusError;
use rusqlite::Connection;
use serde_json::json;
use zbus::message::Header;

use crate::error::Error;
use crate::keys;
use crate::port_change::{now, Ports};
use crate::store;

#[derive(Debug)]
pub struct SshService {
    guard: Guard,
    ports: Arc<Ports>,
    db: Arc<Mutex<Connection>>,
    /// Answers AuthorizedKeys on its own connection: a login never waits behind a port change.
    reader: Mutex<Connection>,
    host_keys: PathBuf,
}

impl SshService {
    pub fn new(
        guard: Guard,
        ports: Arc<Ports>,
        db: Arc<Mutex<Connection>>,
        reader: Connection,
        host_keys: PathBuf,
    ) -> SshService {
        SshService {
            guard,
            ports,
            db,
            reader: Mutex::new(reader),
            host_keys,
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Result<T, BusError> {
        let mut conn = self
            .db
            .lock()
            .map_err(|_| BusError::Failed("the database lock is poisoned".into()))?;
        tokio::task::block_in_place(|| f(&mut conn)).map_err(BusError::from)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, BusError> {
        let conn = self
            .reader
            .lock()
            .map_err(|_| BusError::Failed("the database lock is poisoned".into()))?;
        tokio::task::block_in_place(|| f(&conn)).map_err(BusError::from)
    }
}

fn invalid(m: String) -> BusError {
    BusError::InvalidArgument(m)
}

#[zbus::interface(name = "org.rampart.Ssh1")]
impl SshService {
    async fn status(&self) -> Result<Status, BusError> {
        let rec = self.ports.record()?;
        let keys = self.read(store::key_count)?;
        let mut change = rec.to_wire();
        change.login_seen = self.ports.login_seen(&rec)?;
        Ok(Status {
            port: rec.port.unwrap_or(0),
            listening: rec.listening_ports(),
            change,
            keys,
        })
    }

    async fn set_port(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        port: u16,
    ) -> Result<PortChange, BusError> {
        let action = Action {
            permission: "ssh.port",
            target: &format!("port {port}"),
            details: json!({ "port": port }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self.ports.set_port(token, port).await?)
            })
            .await
    }

    async fn confirm_port(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
    ) -> Result<PortChange, BusError> {
        let rec = self.ports.record()?;
        let target = format!("port {}", rec.to_wire().new_port);
        let action = Action {
            permission: "ssh.confirm",
            target: &target,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async {
                Ok(self.ports.confirm(token).await?)
            })
            .await
    }

    async fn cancel_port(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
    ) -> Result<PortChange, BusError> {
        let rec = self.ports.record()?;
        let target = format!("port {}", rec.to_wire().new_port);
        let action = Action {
            permission: "ssh.port",
            target: &target,
            details: json!({ "cancel": true }),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(self.ports.cancel(token, p.name()).await?)
            })
            .await
    }

    async fn add_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        user: &str,
        key_line: &str,
        comment: &str,
        expires_at: u64,
    ) -> Result<KeyInfo, BusError> {
        let user = keys::parse_user(user).map_err(invalid)?;
        let mut key = keys::parse_key_line(key_line).map_err(invalid)?;
        if !comment.is_empty() {
            keys::check_comment(comment).map_err(invalid)?;
            key.comment = comment.to_owned();
        }
        if expires_at != 0 && expires_at <= now() {
            return Err(invalid(format!(
                "expires_at {expires_at} is in the past; use 0 for no expiry"
            )));
        }
        let target = user.clone();
        let action = Action {
            permission: "ssh.key-add",
            target: &target,
            details: json!({
                "fingerprint": key.fingerprint, "algorithm": key.algorithm, "bits": key.bits,
                "comment": key.comment, "expires_at": expires_at,
            }),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                self.write(|db| store::add_key(db, &user, &key, p.name(), now(), expires_at))
            })
            .await
    }

    async fn remove_key(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        fingerprint: &str,
    ) -> Result<(), BusError> {
        let fingerprint = keys::parse_fingerprint(fingerprint).map_err(invalid)?;
        let action = Action {
            permission: "ssh.key-remove",
            target: &fingerprint,
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |_| async {
                if self.write(|db| store::remove_key(db, &fingerprint))? {
                    Ok(())
                } else {
                    Err(invalid(format!("no stored key has fingerprint {fingerprint}; `rampartctl ssh keys` lists them")))
                }
            })
            .await
    }

    async fn keys(&self, user: &str) -> Result<Vec<KeyInfo>, BusError> {
        let user = if user.is_empty() {
            None
        } else {
            Some(keys::parse_user(user).map_err(invalid)?)
        };
        self.read(|db| store::keys(db, user.as_deref()))
    }

    async fn set_account(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        user: &str,
        enabled: bool,
        expires_at: u64,
    ) -> Result<Account, BusError> {
        let account = Account {
            user: keys::parse_user(user).map_err(invalid)?,
            enabled,
            expires_at,
        };
        let action = Action {
            permission: "ssh.account",
            target: &account.user,
            details: json!({ "enabled": enabled, "expires_at": expires_at }),
        };
        self.guard
            .run(&header, token, action, |_| async {
                self.write(|db| store::set_account(db, &account))?;
                Ok(account.clone())
            })
            .await
    }

    async fn accounts(&self) -> Result<Vec<Account>, BusError> {
        self.read(store::accounts)
    }

    async fn authorized_keys(&self, user: &str) -> Result<Vec<String>, BusError> {
        // sshd asks for every login attempt, including made-up names: those simply have no keys.
        let Ok(user) = keys::parse_user(user) else {
            return Ok(Vec::new());
        };
        self.read(|db| store::authorized_keys(db, &user, now()))
    }

    async fn host_keys(&self) -> Result<Vec<HostKey>, BusError> {
        crate::hostkeys::read(&self.host_keys).map_err(BusError::from)
    }
}
