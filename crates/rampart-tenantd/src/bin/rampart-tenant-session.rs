//! rampart-tenant-session: the tenants' line in sshd's PAM session stack (`pam_exec`), in place of pam_systemd.
//! On `open_session` it asks rampart-tenantd (`OpenSession`) to move its parent — sshd's privileged process of
//! this connection, which opens the PAM session before it forks the tenant's side — into a scope in the tenant's
//! slice. A refusal (suspended or deleted tenant) or no answer exits non-zero, and the `required` line makes sshd
//! refuse the login: failing closed. Other PAM calls (`close_session`) have nothing to do.
//!
//! pam_exec passes `PAM_USER` and `PAM_TYPE` in the environment; nothing else is read.

use std::process::ExitCode;
use std::time::Duration;

use rampart_interfaces::tenant::TenantProxy;

const TIMEOUT: Duration = Duration::from_secs(15);

async fn open(user: &str, pid: u32) -> Result<(), String> {
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| format!("cannot reach the system bus: {e}"))?;
    let proxy = TenantProxy::new(&conn).await.map_err(|e| e.to_string())?;
    proxy.open_session(user, pid).await.map_err(|e| {
        format!(
            "rampart-tenantd: {}",
            rampart_interfaces::error::message(&e)
        )
    })
}

fn main() -> ExitCode {
    let kind = std::env::var("PAM_TYPE").unwrap_or_default();
    if kind != "open_session" {
        return ExitCode::SUCCESS;
    }
    let Ok(user) = std::env::var("PAM_USER") else {
        eprintln!("rampart-tenant-session: no PAM_USER (run by pam_exec only)");
        return ExitCode::FAILURE;
    };
    let pid = u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart-tenant-session: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::time::timeout(TIMEOUT, open(&user, pid))
            .await
            .unwrap_or_else(|_| Err("rampart-tenantd did not answer in time".to_owned()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart-tenant-session: {user}: {e}");
            ExitCode::FAILURE
        }
    }
}
