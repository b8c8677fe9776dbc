//! `rampartctl account …` and `rampartctl setup …`: accounts, 2FA resets and the first-boot setup state
//! (rampart-identityd). Every change is authorized and audited by the daemon; root on the console passes an empty
//! session token. Passwords are read from stdin, never from the command line (where `ps` would show them).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use rampart_interfaces::identity::{AccountInfo, IdentityProxy};

use crate::output::{call, now, parse_expiry, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Every account: role, state, expiry, 2FA, last login.
    List(Json),
    /// Create an account; the password is read from stdin (one line). It enrols TOTP at its first login.
    Create {
        username: String,
        /// root, admin, auditor or tenant.
        #[arg(long, default_value = "admin")]
        role: String,
        /// When the account stops working: an RFC 3339 time or a duration from now (30days); default never.
        #[arg(long, value_parser = parse_expiry, default_value = "never")]
        expires: u64,
        #[command(flatten)]
        json: Json,
    },
    /// Disable an account: its sessions end, its SSH keys stop working.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Set when an account stops working (`never` clears it).
    Expiry {
        username: String,
        #[arg(value_parser = parse_expiry)]
        expires: u64,
    },
    /// Forget an account's TOTP and recovery codes: it enrols again at its next login.
    Reset2fa { username: String },
    /// Recovery on the console: with one of the account's recovery codes (read from stdin), reset its 2FA.
    Recover { username: String },
    /// End every session of an account.
    Revoke { username: String },
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Whether the first-boot setup is complete, and by whom.
    Status(Json),
    /// The one-time code for the web wizard (console only).
    Code(Json),
}

fn read_line(what: &str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!line.is_empty(), "no {what} on stdin");
    Ok(line)
}

fn state(a: &AccountInfo) -> String {
    if a.disabled {
        format!("disabled ({})", a.disabled_reason)
    } else {
        "enabled".to_owned()
    }
}

pub async fn run(conn: &zbus::Connection, cmd: AccountCommand) -> Result<ExitCode> {
    let id = IdentityProxy::new(conn)
        .await
        .context("cannot reach rampart-identityd")?;
    let done = |a: &AccountInfo| {
        println!(
            "{}: {}, expires {}",
            a.username,
            state(a),
            time(a.expires_at)
        );
        Ok(ExitCode::SUCCESS)
    };
    match cmd {
        AccountCommand::List(j) => {
            let accounts = id.accounts().await.map_err(call("accounts"))?;
            if j.json {
                return print_json(&accounts);
            }
            let t = now();
            let rows: Vec<Vec<String>> = accounts
                .iter()
                .map(|a| {
                    let soon =
                        a.expires_at != 0 && a.expires_at > t && a.expires_at - t < 7 * 86_400;
                    vec![
                        a.username.clone(),
                        a.role.clone(),
                        state(a),
                        format!(
                            "{}{}",
                            time(a.expires_at),
                            if soon { " (soon)" } else { "" }
                        ),
                        if a.totp_enrolled {
                            format!("yes, {} recovery codes", a.recovery_codes_left)
                        } else {
                            "enrols at next login".to_owned()
                        },
                        time(a.last_login),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["USER", "ROLE", "STATE", "EXPIRES", "2FA", "LAST LOGIN"],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Create {
            username,
            role,
            expires,
            json,
        } => {
            let password = read_line("password")?;
            let a = id
                .create_account(TOKEN, &username, &role, &password, expires)
                .await
                .map_err(call("create"))?;
            if json.json {
                return print_json(&a);
            }
            println!(
                "created {} ({}), uid {}; TOTP is enrolled at the first login",
                a.username, a.role, a.uid
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Disable { username } => done(
            &id.set_disabled(TOKEN, &username, true)
                .await
                .map_err(call("disable"))?,
        ),
        AccountCommand::Enable { username } => done(
            &id.set_disabled(TOKEN, &username, false)
                .await
                .map_err(call("enable"))?,
        ),
        AccountCommand::Expiry { username, expires } => done(
            &id.set_expiry(TOKEN, &username, expires)
                .await
                .map_err(call("expiry"))?,
        ),
        AccountCommand::Reset2fa { username } => {
            let a = id
                .reset_second_factor(TOKEN, &username)
                .await
                .map_err(call("reset-2fa"))?;
            println!(
                "{}: 2FA reset; sessions ended; TOTP is enrolled again at the next login",
                a.username
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Recover { username } => {
            let code = read_line("recovery code")?;
            let a = id
                .recover_second_factor(&username, &code)
                .await
                .map_err(call("recover"))?;
            println!(
                "{}: 2FA reset with a recovery code; TOTP is enrolled again at the next login",
                a.username
            );
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Revoke { username } => {
            let n = id
                .revoke_sessions(TOKEN, &username)
                .await
                .map_err(call("revoke"))?;
            println!("{username}: {n} session(s) ended");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_setup(conn: &zbus::Connection, cmd: SetupCommand) -> Result<ExitCode> {
    let id = IdentityProxy::new(conn)
        .await
        .context("cannot reach rampart-identityd")?;
    match cmd {
        SetupCommand::Status(j) => {
            let s = id.setup_state().await.map_err(call("setup status"))?;
            if j.json {
                return print_json(&s);
            }
            if s.admin.is_empty() {
                println!("setup: {}", s.state);
            } else {
                println!(
                    "setup: {} via {} at {} (administrator {})",
                    s.state,
                    s.completed_via,
                    time(s.completed_at),
                    s.admin
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SetupCommand::Code(j) => {
            let c = id.setup_code().await.map_err(call("setup code"))?;
            if j.json {
                return print_json(&c);
            }
            println!(
                "{} (valid until {}, single use)",
                c.code,
                time(c.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
