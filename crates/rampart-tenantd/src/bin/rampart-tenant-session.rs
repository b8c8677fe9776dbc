//! rampart-tenant-session: the tenants' lines in sshd's PAM stack (`pam_exec`, for members of rampart-tenants
//! only), which put every SFTP session of a tenant into its slice and keep suspended or deleted tenants out.
//!
//! - **account** (`PAM_TYPE=account`): asks rampart-tenantd (`OpenSession`) to move its parent — sshd's
//!   privileged process of this connection, which runs the account check and later opens the session and forks
//!   the tenant's side — into a scope in the tenant's slice. A refusal (suspended or deleted tenant, not sshd) or
//!   no answer exits non-zero: sshd ends a login whose account check fails.
//! - **open_session**: checks that this process (forked by that same sshd process) is in
//!   `tenant.slice/tenant-<user>.slice`; if not, it kills its parent, ending the connection, and exits non-zero.
//!   The check is needed because sshd does *not* end a login whose PAM session fails to open — it only restricts
//!   it (seen with OpenSSH 9.2: `pam_open_session(): System error`, then the user's child ran anyway, outside
//!   the slice). This way a session runs in its tenant's slice or not at all.
//! - anything else (`close_session`): nothing to do.
//!
//! pam_exec passes `PAM_USER` and `PAM_TYPE` in the environment; nothing else is read.

use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::getppid;
use rampart_interfaces::tenant::{check_name, slice_name, TenantProxy, PARENT_SLICE};

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

fn account(user: &str) -> Result<(), String> {
    let pid = u32::try_from(getppid().as_raw()).map_err(|_| "no parent process".to_owned())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, open(user, pid))
            .await
            .unwrap_or_else(|_| Err("rampart-tenantd did not answer in time".to_owned()))
    })
}

/// Whether this process runs in `user`'s slice (any hierarchy: the unified one, or systemd's named one).
fn in_slice(user: &str) -> Result<(), String> {
    let wanted = format!("/{PARENT_SLICE}/{}/", slice_name(user));
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    if cgroups.lines().any(|l| l.contains(&wanted)) {
        return Ok(());
    }
    // Not in the slice: this session must not run. sshd would carry on after a failed PAM session, so the
    // connection's process is ended here (it is our parent, root like us).
    let parent = getppid();
    let killed = kill(parent, Signal::SIGKILL)
        .map(|()| format!("ended sshd process {parent}"))
        .unwrap_or_else(|e| format!("could not end sshd process {parent}: {e}"));
    Err(format!(
        "the session is not in {} ({}); {killed}",
        slice_name(user),
        cgroups.lines().next().unwrap_or("")
    ))
}

fn main() -> ExitCode {
    let kind = std::env::var("PAM_TYPE").unwrap_or_default();
    let user = std::env::var("PAM_USER").unwrap_or_default();
    let result = match kind.as_str() {
        "account" | "open_session" if check_name(&user).is_err() => {
            Err(format!("PAM_USER {user:?} is not a tenant name"))
        }
        "account" => account(&user),
        "open_session" => in_slice(&user),
        _ => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart-tenant-session: {user} ({kind}): {e}");
            ExitCode::FAILURE
        }
    }
}
