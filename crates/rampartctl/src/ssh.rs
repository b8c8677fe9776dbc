//! `rampartctl ssh …`: sshd's port, the SSH keys store and host key fingerprints (rampart-sshconfd). Every change
//! is authorized and audited by the daemon; root on the console passes an empty session token.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_interfaces::ssh::{KeyInfo, PortChange, SshProxy, PORT_IDLE, UNUSED_AFTER_SECS};
use serde::Serialize;

use crate::output::{call, now, parse_expiry, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Port, listening ports and any port change in progress.
    Status(Json),
    /// Move SSH to another port (commit-confirm): `port 40022`, then log in on it and run `ssh confirm`.
    Port {
        port: u16,
        #[command(flatten)]
        json: Json,
    },
    /// Finish a port change, from a session logged in on the new port.
    Confirm(Json),
    /// Abandon a port change and stay on the old port.
    Cancel(Json),
    /// Stored keys with their last use; keys unused for 90 days are flagged.
    Keys {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Store a public key for a user: `key-add alice ~/.ssh/id_ed25519.pub` (or `-` for stdin).
    KeyAdd {
        user: String,
        /// A .pub file holding one line `<type> <base64> [comment]`, or `-` for stdin.
        file: String,
        /// Replaces the comment in the key line.
        #[arg(long, default_value = "")]
        comment: String,
        /// When the key stops working: an RFC 3339 time or a duration from now (90days); default never.
        #[arg(long, value_parser = parse_expiry, default_value = "never")]
        expires: u64,
        #[command(flatten)]
        json: Json,
    },
    /// Remove a key by fingerprint (SHA256:…, see `keys`).
    KeyRemove { fingerprint: String },
    /// Set an account's SSH access: `account alice --disable`, `account bob --expires 2026-12-31T00:00:00Z`.
    Account(AccountArgs),
    /// Accounts with their SSH access state.
    Accounts(Json),
    /// This machine's host key fingerprints (compare them with what `ssh` shows on first connection).
    Hostkeys(Json),
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    user: String,
    /// Allow SSH logins again.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Refuse all SSH logins (the keys stay stored).
    #[arg(long)]
    disable: bool,
    /// When access ends: an RFC 3339 time, a duration from now (30days), or `never`.
    #[arg(long, value_parser = parse_expiry)]
    expires: Option<u64>,
    #[command(flatten)]
    json: Json,
}

/// A key not used (or, if never used, not added) within [`UNUSED_AFTER_SECS`].
fn stale(k: &KeyInfo, now: u64) -> bool {
    let since = if k.last_used == 0 {
        k.added_at
    } else {
        k.last_used
    };
    now.saturating_sub(since) >= UNUSED_AFTER_SECS
}

#[derive(Debug, Serialize)]
struct KeyRow<'a> {
    #[serde(flatten)]
    key: &'a KeyInfo,
    unused_90_days: bool,
}

pub async fn run(conn: &zbus::Connection, cmd: SshCommand) -> Result<ExitCode> {
    let ssh = SshProxy::new(conn)
        .await
        .context("cannot reach rampart-sshconfd")?;
    match cmd {
        SshCommand::Status(j) => {
            let s = ssh.status().await.map_err(call("status"))?;
            if j.json {
                return print_json(&s);
            }
            match s.port {
                0 => println!("port: none set; sshd listens on 127.0.0.1:22 only (set one with `rampartctl ssh port N`)"),
                p => println!("port: {p}"),
            }
            let listening: Vec<String> = s.listening.iter().map(u16::to_string).collect();
            println!("listening: {}", listening.join(", "));
            println!("keys: {}", s.keys);
            print_change(&s.change);
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::Port { port, json } => {
            let c = ssh
                .set_port(TOKEN, port)
                .await
                .map_err(call("port change"))?;
            changed(&c, json.json)
        }
        SshCommand::Confirm(j) => {
            let c = ssh.confirm_port(TOKEN).await.map_err(call("confirm"))?;
            changed(&c, j.json)
        }
        SshCommand::Cancel(j) => {
            let c = ssh.cancel_port(TOKEN).await.map_err(call("cancel"))?;
            changed(&c, j.json)
        }
        SshCommand::Keys { user, json } => {
            let keys = ssh
                .keys(user.as_deref().unwrap_or(""))
                .await
                .map_err(call("keys"))?;
            let t = now();
            if json.json {
                let rows: Vec<KeyRow<'_>> = keys
                    .iter()
                    .map(|key| KeyRow {
                        key,
                        unused_90_days: stale(key, t),
                    })
                    .collect();
                return print_json(&rows);
            }
            if keys.is_empty() {
                println!("no keys stored");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.user.clone(),
                        k.fingerprint.clone(),
                        format!("{} {}", k.algorithm, k.bits),
                        time(k.last_used),
                        time(k.expires_at),
                        if stale(k, t) {
                            "UNUSED 90+ days: remove?".to_owned()
                        } else {
                            String::new()
                        },
                        k.comment.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "USER",
                        "FINGERPRINT",
                        "TYPE",
                        "LAST USED",
                        "EXPIRES",
                        "FLAG",
                        "COMMENT"
                    ],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::KeyAdd {
            user,
            file,
            comment,
            expires,
            json,
        } => {
            let line = read_key(&file)?;
            let k = ssh
                .add_key(TOKEN, &user, &line, &comment, expires)
                .await
                .map_err(call("key-add"))?;
            if json.json {
                return print_json(&k);
            }
            println!(
                "stored {} {} {} for {}",
                k.algorithm, k.bits, k.fingerprint, k.user
            );
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::KeyRemove { fingerprint } => {
            ssh.remove_key(TOKEN, &fingerprint)
                .await
                .map_err(call("key-remove"))?;
            println!("removed {fingerprint}");
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::Account(a) => {
            let current = ssh.accounts().await.map_err(call("accounts"))?;
            let known = current.iter().find(|c| c.user == a.user);
            let enabled = if a.enable || a.disable {
                a.enable
            } else {
                known.is_none_or(|c| c.enabled)
            };
            let expires = a
                .expires
                .unwrap_or_else(|| known.map_or(0, |c| c.expires_at));
            let acct = ssh
                .set_account(TOKEN, &a.user, enabled, expires)
                .await
                .map_err(call("account"))?;
            if a.json.json {
                return print_json(&acct);
            }
            println!(
                "{}: SSH {}, expires {}",
                acct.user,
                if acct.enabled { "enabled" } else { "disabled" },
                time(acct.expires_at)
            );
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::Accounts(j) => {
            let accounts = ssh.accounts().await.map_err(call("accounts"))?;
            if j.json {
                return print_json(&accounts);
            }
            let t = now();
            let rows: Vec<Vec<String>> = accounts
                .iter()
                .map(|a| {
                    let state = match (a.enabled, a.expires_at != 0 && a.expires_at <= t) {
                        (false, _) => "disabled",
                        (true, true) => "expired",
                        (true, false) => "enabled",
                    };
                    vec![a.user.clone(), state.to_owned(), time(a.expires_at)]
                })
                .collect();
            print!("{}", table::render(&["USER", "SSH", "EXPIRES"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        SshCommand::Hostkeys(j) => {
            let keys = ssh.host_keys().await.map_err(call("hostkeys"))?;
            if j.json {
                return print_json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.algorithm.clone(),
                        k.bits.to_string(),
                        k.fingerprint.clone(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["TYPE", "BITS", "FINGERPRINT"], &rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One key line from a file or stdin; at most 16 KiB.
fn read_key(file: &str) -> Result<String> {
    let mut text = String::new();
    let limit = 16 * 1024;
    if file == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_string(&mut text)
            .context("cannot read the key from stdin")?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .with_context(|| format!("cannot read the key from {file}"))?;
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        [line] => Ok((*line).to_owned()),
        [] => anyhow::bail!("{file} holds no key line"),
        _ => anyhow::bail!("{file} holds {} lines; add one key at a time", lines.len()),
    }
}

fn print_change(c: &PortChange) {
    if c.state == PORT_IDLE {
        if !c.message.is_empty() {
            println!("last change: {}", c.message);
        }
        return;
    }
    println!(
        "change: {} → {} ({}), deadline {}",
        c.old_port,
        c.new_port,
        c.state,
        time(c.deadline)
    );
    println!("{}", c.message);
}

fn changed(c: &PortChange, json: bool) -> Result<ExitCode> {
    if json {
        return print_json(c);
    }
    print_change(c);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("never"), Ok(0));
        assert_eq!(parse_expiry("2026-12-31T00:00:00Z"), Ok(1_798_675_200));
        let in_a_day = parse_expiry("1day").unwrap();
        assert!(in_a_day >= now() + 86_000 && in_a_day <= now() + 86_500);
        assert!(parse_expiry("soon").is_err());
    }

    #[test]
    fn stale_uses_last_use_or_added() {
        let k = |added_at, last_used| KeyInfo {
            user: "a".into(),
            fingerprint: String::new(),
            algorithm: String::new(),
            bits: 0,
            comment: String::new(),
            added_by: String::new(),
            added_at,
            last_used,
            expires_at: 0,
        };
        let now = 200 * 86_400;
        assert!(stale(&k(0, 0), now));
        assert!(!stale(&k(150 * 86_400, 0), now));
        assert!(stale(&k(0, 100 * 86_400), now));
        assert!(!stale(&k(0, 150 * 86_400), now));
    }
}
