//! rampart-authorized-keys: sshd's `AuthorizedKeysCommand`. Run by sshd as `rampart-sshkeys` with the login name
//! (`%u`); prints the key lines rampart-sshconfd allows for that user now, one per line.
//!
//! On any error it prints nothing and exits non-zero, and sshd offers no key: failing closed. A slow daemon cannot
//! hold a login for long either: the lookup gives up after a few seconds.
//!
//! `--bus ADDRESS` exists for tests, which run sshd against a private bus (sshd clears the environment of this
//! command, so `DBUS_SYSTEM_BUS_ADDRESS` cannot be used); sshd_config, which names the arguments, is root's.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use rampart_interfaces::ssh::SshProxy;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn lookup(bus: Option<&str>, user: &str) -> Result<Vec<String>, String> {
    let builder = match bus {
        Some(address) => zbus::connection::Builder::address(address),
        None => zbus::connection::Builder::system(),
    }
    .map_err(|e| format!("bad bus address: {e}"))?;
    let conn = builder
        .build()
        .await
        .map_err(|e| format!("cannot reach the system bus: {e}"))?;
    let proxy = SshProxy::new(&conn).await.map_err(|e| e.to_string())?;
    proxy.authorized_keys(user).await.map_err(|e| {
        format!(
            "rampart-sshconfd: {}",
            rampart_interfaces::error::message(&e)
        )
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bus, user) = match args.as_slice() {
        [user] => (None, user.as_str()),
        [flag, address, user] if flag == "--bus" => (Some(address.as_str()), user.as_str()),
        _ => {
            eprintln!("usage: rampart-authorized-keys [--bus ADDRESS] USER");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart-authorized-keys: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::time::timeout(TIMEOUT, lookup(bus, user))
            .await
            .unwrap_or_else(|_| Err("rampart-sshconfd did not answer in time".to_owned()))
    });
    match result {
        Ok(lines) => {
            let mut out = String::new();
            for line in lines.iter().filter(|l| !l.contains('\n')) {
                out.push_str(line);
                out.push('\n');
            }
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart-authorized-keys: {e}");
            ExitCode::FAILURE
        }
    }
}
