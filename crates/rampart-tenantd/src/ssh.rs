//! What tenantd needs from rampart-sshconfd: a tenant's SSH access follows its state (`SetAccount`: enabled
//! while active, disabled when suspended or deleted), and a purged tenant's keys go with it, so a later tenant of
//! the same name never inherits them.
//!
//! The caller's session token is passed through, as sshconfd passes the wizard's token to firewalld: sshconfd
//! authorizes and audits the change for the person who asked. What the daemon does on its own (a purge) has no
//! token and acts as root, which it is.

use std::future::Future;
use std::time::Duration;

use rampart_interfaces::ssh::SshProxy;

use crate::error::Error;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Ssh {
    proxy: SshProxy<'static>,
}

async fn call<T>(f: impl Future<Output = zbus::Result<T>>) -> Result<T, Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Ssh(rampart_interfaces::error::message(&e))),
        Err(_) => Err(Error::Ssh(format!(
            "no answer within {} s; check `systemctl status rampart-sshconfd`",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

impl Ssh {
    pub async fn new(conn: &zbus::Connection) -> Result<Ssh, Error> {
        let proxy = SshProxy::new(conn)
            .await
            .map_err(|e| Error::Ssh(e.to_string()))?;
        Ok(Ssh { proxy })
    }

    /// Lets `user` log in with its keys (`enabled`) or not.
    pub async fn set_access(&self, token: &str, user: &str, enabled: bool) -> Result<(), Error> {
        call(self.proxy.set_account(token, user, enabled, 0))
            .await
            .map(|_| ())
    }

    /// Removes every key stored for `user`; returns how many.
    pub async fn remove_keys(&self, user: &str) -> Result<usize, Error> {
        let keys = call(self.proxy.keys(user)).await?;
        for key in keys.iter().filter(|k| k.user == user) {
            call(self.proxy.remove_key("", &key.fingerprint)).await?;
        }
        Ok(keys.len())
    }
}
