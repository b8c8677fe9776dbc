//! rampart-identityd: who may do what on a Rampart machine.
//!
//! - **Accounts** ([`accounts`], [`store`]): name, role (`root`, `admin`, `auditor`, `tenant`), argon2id password
//!   hash ([`password`]), TOTP seed ([`totp`]), ten single-use recovery codes stored hashed, optional expiry
//!   (disabled automatically when it comes, and its SSH keys stop working at the same moment because
//!   rampart-sshconfd holds the same expiry — [`ssh_sync`]), disabled flag, created and last-login times. Each
//!   account is also a system user, served to NSS as a JSON user record ([`userdb`]): the root is read-only.
//! - **2FA is mandatory**: there is no setting to turn it off; an account without TOTP enrols at its next login.
//! - **Roles → permissions**: the catalogue is `rampart_interfaces::identity::PERMISSIONS`; every daemon's guard
//!   asks [`service`]'s `Authorize` for a caller's token.
//! - **Sessions** ([`login`]): 256-bit random tokens stored as SHA-256, idle and absolute timeouts, a new token at
//!   every login, revoked when the account is disabled, expires, has its 2FA reset or changes its password; login
//!   throttling per account and per source ([`throttle`]).
//! - **Setup** ([`setup`]): until the first-boot wizard (console or web) has made an administrator with TOTP,
//!   an SSH key and SSH on its own port, nobody can log in.
//!
//! identityd listens on nothing but the system bus; the web tier (rampart-webd) passes it the client's
//! address for throttling, and writes the journal entries rampart-guardd bans from.
//!
//! Rejected: PAM (the panel's users are not shell users first, and PAM modules would make the panel's login
//! depend on whatever the image's PAM stack does); JWTs or other self-contained tokens (not revocable without a
//! server-side list anyway — so keep only the list).

pub mod accounts;
mod error;
pub mod identity;
pub mod login;
pub mod password;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod setup;
pub mod ssh_sync;
pub mod store;
pub mod throttle;
pub mod totp;
pub mod userdb;

use std::future::Future;
use std::sync::Arc;

pub use error::Error;
use rampart_common::clock::now;
use rampart_common::guard::{Action, Guard};
use rampart_common::notify;
use rampart_interfaces::audit::Outcome;
use rampart_interfaces::identity::{BUS_NAME, OBJECT_PATH, SETUP_COMPLETE};
use serde_json::json;

use crate::identity::{Event, Identity};
use crate::service::IdentityService;
use crate::settings::Settings;

/// Audit actions identityd records that are not permissions: authentication steps and what it does on its own.
pub const AUDIT_EVENTS: &[&str] = &["identity.login", "identity.setup-begin", "identity.expire"];

/// The principal identityd acts as when it does something on its own (see rampart_common::guard::SERVICES).
pub const PRINCIPAL: &str = "service:rampart-identityd";

fn bus_err(e: zbus::Error) -> Error {
    Error::Common(rampart_common::Error::BusConnect(Box::new(e)))
}

/// This machine's host name (for otpauth labels and the password policy).
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "rampart".to_owned())
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
    let marker = path.with_file_name("setup-complete");
    let db = tokio::task::block_in_place(|| store::open(&path))?;
    let conn = builder.build().await.map_err(bus_err)?;
    let ssh = ssh_sync::SshSync::new(&conn, settings.ssh_sync).await?;
    let expiry_check = settings.expiry_check;
    let identity = Arc::new(Identity::new(db, settings, ssh, host_name())?);
    identity.sync_userdb()?;

    let tokens = Arc::clone(&identity);
    let mut guard =
        Guard::new(&conn)
            .await
            .map_err(bus_err)?
            .with_local_tokens(move |token, permission| {
                let identity = Arc::clone(&tokens);
                Box::pin(async move {
                    identity
                        .authorize(&token, &permission, now())
                        .map(|p| p.name)
                        .map_err(|e| e.to_string())
                })
            });
    if let Some(uid) = console_uid {
        guard = guard.with_console_uid(uid);
    }
    let info = identity.setup_info()?;
    if info.state == SETUP_COMPLETE {
        let _ = std::fs::write(&marker, b"");
    }
    let service = IdentityService::new(guard.clone(), Arc::clone(&identity), marker);
    rampart_common::bus::publish(&conn, BUS_NAME, OBJECT_PATH, service).await?;

    let ticker = {
        let identity = Arc::clone(&identity);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(expiry_check).await;
                match tokio::task::block_in_place(|| identity.tick(now())) {
                    Ok(events) => {
                        for event in events {
                            report(&guard, event).await;
                        }
                    }
                    Err(e) => log::error!(
                        "periodic check failed: {}",
                        rampart_common::error::chain(&e)
                    ),
                }
            }
        })
    };
    log::info!("serving; setup {}", info.state);
    notify::ready(&format!("setup {}", info.state));
    service::notify_status(&info);
    let probe = Arc::clone(&identity);
    let _watchdog = notify::spawn_watchdog(move || probe.healthy());

    let why = shutdown.await;
    log::info!("{why}: stopping");
    notify::stopping("stopping");
    ticker.abort();
    let _ = conn.release_name(BUS_NAME).await;
    Ok(())
}

/// Logs and audits what the periodic check did.
async fn report(guard: &Guard, event: Event) {
    match event {
        Event::Expired { account } => {
            log::warn!("account {account} expired and was disabled; its sessions ended");
            let action = Action {
                permission: "identity.expire",
                target: &account,
                details: json!({}),
            };
            if let Err(e) = guard
                .record_event(None, PRINCIPAL, action, Outcome::Allowed)
                .await
            {
                log::error!("could not audit the expiry of {account}: {e}");
            }
        }
        Event::SessionEnded { id, account } => {
            log::info!("session {id} of {account} timed out");
        }
    }
}
