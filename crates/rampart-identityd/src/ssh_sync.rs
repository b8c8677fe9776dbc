//! What identityd needs from rampart-sshconfd: keeping an account's SSH access (enabled, expiry) in step with
//! the account, and, at the end of setup, proof that the administrator's SSH access works (a key stored, SSH
//! moved to its own port with a login proven there).
//!
//! identityd calls `SetAccount` as `service:rampart-identityd` (see rampart_common::guard::SERVICES), which may
//! do that and nothing else.

use std::time::Duration;

use rampart_interfaces::ssh::{SshProxy, PORT_IDLE};

use crate::error::Error;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SshSync {
    /// None: do not propagate (settings `ssh_sync = false`, tests without sshconfd).
    proxy: Option<SshProxy<'static>>,
}

async fn call<T>(f: impl std::future::Future<Output = zbus::Result<T>>) -> Result<T, Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Ssh(rampart_interfaces::error::message(&e))),
        Err(_) => Err(Error::Ssh(format!(
            "no answer within {} s; check `systemctl status rampart-sshconfd`",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

impl SshSync {
    pub async fn new(conn: &zbus::Connection, enabled: bool) -> Result<SshSync, Error> {
        let proxy = if enabled {
            Some(
                SshProxy::new(conn)
                    .await
                    .map_err(|e| Error::Ssh(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(SshSync { proxy })
    }

    /// Sets the account's SSH access; an error means nothing may be committed on identityd's side either.
    pub async fn set_account(
        &self,
        user: &str,
        enabled: bool,
        expires_at: u64,
    ) -> Result<(), Error> {
        let Some(p) = &self.proxy else {
            return Ok(());
        };
        call(p.set_account("", user, enabled, expires_at))
            .await
            .map(|_| ())
    }

    /// Whether `admin` can log in over SSH the way setup promises; the error says which step is missing.
    pub async fn ready_for(&self, admin: &str) -> Result<(), Error> {
        let Some(p) = &self.proxy else {
            return Ok(());
        };
        let keys = call(p.keys(admin)).await?;
        if keys.is_empty() {
            return Err(Error::Refused(format!(
                "{admin} has no SSH key yet: add one (the wizard's SSH key step)"
            )));
        }
        let status = call(p.status()).await?;
        if status.change.state != PORT_IDLE {
            return Err(Error::Refused(format!(
                "the SSH port change to {} is not confirmed yet: log in with `ssh -p {} {admin}@<this machine>` \
                 from your computer; the wizard confirms once that login arrived",
                status.change.new_port, status.change.new_port
            )));
        }
        if status.port == 0 || status.port == 22 {
            return Err(Error::Refused(
                "SSH has not been moved to its own port yet (the wizard's SSH port step)".into(),
            ));
        }
        Ok(())
    }
}
