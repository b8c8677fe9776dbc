//! rampart-sshconfd: owns sshd's configuration and the SSH keys store.
//!
//! - **Config** ([`config`], [`sshd`]): sshd's drop-in `/var/lib/rampart/sshd_config.d/50-rampart.conf` is a pure
//!   function of the database — keys only, no root, no passwords, modern algorithms only (ssh-audit clean), the
//!   port. Every new file is checked with `sshd -t` before it replaces the old one, then sshd is reloaded; a failed
//!   check changes nothing. Until a port is set (the first-boot wizard does it) sshd listens on 127.0.0.1:22 only,
//!   so a fresh machine is not reachable over SSH before an administrator with a key exists.
//! - **Keys** ([`keys`], [`store`]): sshd reads no `authorized_keys` file (`AuthorizedKeysFile none`); its
//!   `AuthorizedKeysCommand` is `rampart-authorized-keys %u`, which asks this daemon over the bus. Keys are
//!   validated on input (type, size, no options); disabled or expired accounts and expired keys get nothing.
//! - **Last use** ([`logins`], [`sshd_log`]): sshd's `Accepted publickey … SHA256:…` lines update each key's last
//!   use, so stale keys can be found and removed.
//! - **Port changes** ([`port_change`]): commit-confirm, proven by a login on the new port.
//!
//! `rampart-authorized-keys` lives in this crate, not in its own, because it is the other half of this daemon's
//! contract with sshd: it must print exactly the lines this daemon's config promises, and the two are released
//! and tested together. It is 50 lines with no logic of its own.
//!
//! Rejected: writing `authorized_keys` files into homes (a tenant or an attacker with the user's rights could add
//! lines; keys would be scattered and unattributed), and editing `/etc/ssh/sshd_config` (read-only root; and a
//! drop-in keeps Debian's file untouched across updates).

pub mod config;
mod error;
pub mod hostkeys;
pub mod keys;
pub mod logins;
pub mod port_change;
pub mod service;
pub mod settings;
pub mod sshd;
pub mod sshd_log;
pub mod store;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::Error;
use rampart_common::guard::Guard;
use rampart_common::notify;
use rampart_interfaces::ssh::{BUS_NAME, OBJECT_PATH};

use crate::config::KeysCommand;
use crate::port_change::Ports;
use crate::service::SshService;
use crate::settings::{LogSource, Settings};
use crate::sshd::Sshd;

fn bus_err(e: zbus::Error) -> Error {
    Error::Common(rampart_common::Error::BusConnect(Box::new(e)))
}

/// Runs the daemon on `builder`'s bus until `shutdown` resolves. `console_uid` overrides who counts as root on
/// the console (tests that cannot run as root).
pub async fn run(
    builder: zbus::connection::Builder<'_>,
    settings: Settings,
    console_uid: Option<u32>,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), Error> {
    let path = settings.database.clone();
    let (db, reader) = tokio::task::block_in_place(|| -> Result<_, Error> {
        let db = store::open(&path)?;
        Ok((db, rampart_common::db::open_read_only(&path)?))
    })?;
    let db = Arc::new(Mutex::new(db));
    let conn = builder.build().await.map_err(bus_err)?;
    let keys = KeysCommand {
        command: settings.keys_command.clone(),
        user: settings.keys_command_user.clone(),
    };
    let ports = Arc::new(Ports::new(
        Arc::clone(&db),
        Sshd::new(settings.clone()),
        keys,
        settings.confirm_window,
        conn.clone(),
    ));
    // Before serving: the drop-in on disk must match the database, and a half-done port change is settled.
    ports.resume().await?;

    let mut guard = Guard::new(&conn).await.map_err(bus_err)?;
    if let Some(uid) = console_uid {
        guard = guard.with_console_uid(uid);
    }
    let service = SshService::new(
        guard,
        Arc::clone(&ports),
        Arc::clone(&db),
        reader,
        settings.host_keys.clone(),
    );
    rampart_common::bus::publish(&conn, BUS_NAME, OBJECT_PATH, service).await?;

    let recorder = logins::Recorder::new(Arc::clone(&db));
    let follower = match settings.log.clone() {
        LogSource::File(path) => tokio::spawn(logins::follow_file(path, recorder)),
        LogSource::Journal => {
            tokio::spawn(logins::follow_journal(settings.database.clone(), recorder))
        }
    };
    let ticker = {
        let ports = Arc::clone(&ports);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                ports.tick().await;
            }
        })
    };
    let status = port_change::status_line(&ports.record()?);
    log::info!("serving: {status}");
    notify::ready(&status);
    let probe = Arc::clone(&db);
    let _watchdog = notify::spawn_watchdog(move || !probe.is_poisoned());

    tokio::pin!(shutdown);
    let why = tokio::select! {
        why = &mut shutdown => why,
        ended = follower => {
            let text = match ended {
                Ok(Err(e)) => rampart_common::error::chain(&e),
                other => format!("{other:?}"),
            };
            ticker.abort();
            return Err(Error::Log(format!("the log follower stopped: {text}")));
        }
    };
    log::info!("{why}: stopping");
    notify::stopping("stopping");
    ticker.abort();
    let _ = conn.release_name(BUS_NAME).await;
    Ok(())
}
