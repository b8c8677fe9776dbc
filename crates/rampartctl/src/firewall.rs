//! `rampartctl firewall …`: the host firewall (rampart-firewalld). Every change is authorized and audited by the
//! daemon; root on the console passes an empty session token.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_interfaces::firewall::{Change, FirewallProxy, Rule, RuleSpec, SshAccess};

use crate::output::{call, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// SSH access, rule/ban/pending counts, last reconcile.
    Status(Json),
    /// Stored openings, oldest first.
    List(Json),
    /// Open ports: `open tcp 8080 --comment "staging" [--expires 2h | --permanent REASON] [--from CIDR]...`.
    Open(OpenArgs),
    /// Remove an opening by its id (see `list`).
    Close {
        rule_id: u64,
        #[command(flatten)]
        json: Json,
    },
    /// Openings not reviewed within the review period (90 days by default).
    Unreviewed(Json),
    /// Mark an opening as still needed.
    Review { rule_id: u64 },
    /// Where SSH is reachable from: `ssh --port 2222 [--from CIDR]...`; reverts unless confirmed when it narrows.
    Ssh(SshArgs),
    /// Keep a change that is waiting for confirmation.
    Confirm { change_id: u64 },
    /// Changes waiting for confirmation.
    Pending(Json),
    /// Current bans, from the kernel.
    Bans(Json),
    /// Ban an address: `ban 192.0.2.7 --for 1h --reason "..."`.
    Ban {
        address: String,
        /// How long, e.g. 30m, 1h, 2days.
        #[arg(long = "for", value_parser = parse_duration, default_value = "1h")]
        duration: Duration,
        #[arg(long, default_value = "banned by hand")]
        reason: String,
    },
    /// Lift a ban (not an error if the address is not banned).
    Unban { address: String },
    /// Sources that are never banned.
    Allowlist(Json),
    /// Add a source that is never banned (lifts current bans inside it).
    Allow {
        cidr: String,
        #[arg(long)]
        comment: String,
    },
    /// Remove an allowlist entry.
    Disallow { cidr: String },
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// tcp or udp.
    protocol: String,
    /// A port (8080), a range (8000-8100) or a list (80,8000-8100).
    ports: String,
    /// Why the port is open (required).
    #[arg(long)]
    comment: String,
    /// Only from these sources (CIDR or address; repeatable). Default: anywhere.
    #[arg(long = "from", value_name = "CIDR")]
    sources: Vec<String>,
    /// Expire after this long (default 24h).
    #[arg(long, value_parser = parse_duration, conflicts_with = "permanent")]
    expires: Option<Duration>,
    /// Never expire; the text says why.
    #[arg(long, value_name = "REASON")]
    permanent: Option<String>,
    #[command(flatten)]
    json: Json,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// SSH port (repeat for two while moving SSH to a new port).
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
    /// Only from these sources (repeatable). Default: anywhere.
    #[arg(long = "from", value_name = "CIDR")]
    sources: Vec<String>,
    #[command(flatten)]
    json: Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30m, 2h, 3days: {e}"))
}

pub async fn run(conn: &zbus::Connection, cmd: FirewallCommand) -> Result<ExitCode> {
    let fw = FirewallProxy::new(conn)
        .await
        .context("cannot reach rampart-firewalld")?;
    match cmd {
        FirewallCommand::Status(j) => {
            let s = fw.status().await.map_err(call("status"))?;
            if j.json {
                return print_json(&s);
            }
            println!("ssh ports:       {}", join(&s.ssh.ports));
            println!("ssh from:        {}", sources(&s.ssh.sources));
            println!("rules:           {}", s.rules);
            println!("bans:            {}", s.bans);
            println!("pending changes: {}", s.pending_changes);
            println!(
                "last reconciled: {}",
                if s.last_reconciled == 0 {
                    "never".into()
                } else {
                    time(s.last_reconciled)
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::List(j) => rules(
            fw.list().await.map_err(call("list"))?,
            j.json,
            "no openings besides SSH, 80 and 443",
        ),
        FirewallCommand::Unreviewed(j) => rules(
            fw.unreviewed().await.map_err(call("unreviewed"))?,
            j.json,
            "every opening was reviewed within the review period",
        ),
        FirewallCommand::Open(a) => {
            let spec = RuleSpec {
                protocol: a.protocol,
                ports: a.ports,
                sources: a.sources,
                comment: a.comment,
                expires_in: a.expires.map_or(0, |d| d.as_secs().max(1)),
                permanent_reason: a.permanent.unwrap_or_default(),
            };
            let change = fw.open(TOKEN, &spec).await.map_err(call("open"))?;
            changed(
                &change,
                a.json.json,
                &format!("opened as rule {}", change.rule_id),
            )
        }
        FirewallCommand::Close { rule_id, json } => {
            let change = fw.close(TOKEN, rule_id).await.map_err(call("close"))?;
            changed(&change, json.json, &format!("rule {rule_id} closed"))
        }
        FirewallCommand::Review { rule_id } => {
            fw.review(TOKEN, rule_id).await.map_err(call("review"))?;
            println!("rule {rule_id} marked as reviewed");
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Ssh(a) => {
            let access = SshAccess {
                ports: a.ports,
                sources: a.sources,
            };
            let change = fw
                .set_ssh_access(TOKEN, &access)
                .await
                .map_err(call("ssh access"))?;
            changed(&change, a.json.json, "SSH access applied")
        }
        FirewallCommand::Confirm { change_id } => {
            fw.confirm(TOKEN, change_id)
                .await
                .map_err(call("confirm"))?;
            println!("change {change_id} confirmed; it stays");
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Pending(j) => {
            let p = fw.pending().await.map_err(call("pending"))?;
            if j.json {
                return print_json(&p);
            }
            if p.is_empty() {
                println!("no change is waiting for confirmation");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = p
                .iter()
                .map(|c| {
                    vec![
                        c.change_id.to_string(),
                        time(c.confirm_by),
                        c.requested_by.clone(),
                        c.description.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["CHANGE", "REVERTS AT (UTC)", "BY", "WHAT"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Bans(j) => {
            let bans = fw.bans().await.map_err(call("bans"))?;
            if j.json {
                return print_json(&bans);
            }
            if bans.is_empty() {
                println!("no bans");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = bans
                .iter()
                .map(|b| {
                    vec![
                        b.address.clone(),
                        humantime::format_duration(Duration::from_secs(b.expires_in)).to_string(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["ADDRESS", "EXPIRES IN"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Ban {
            address,
            duration,
            reason,
        } => {
            let banned = fw
                .ban(TOKEN, &address, duration.as_secs().max(1), &reason)
                .await
                .map_err(call("ban"))?;
            if banned {
                println!(
                    "{address} banned for {}",
                    humantime::format_duration(duration)
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("rampartctl: {address} is allowlisted and was not banned");
                Ok(ExitCode::FAILURE)
            }
        }
        FirewallCommand::Unban { address } => {
            fw.unban(TOKEN, &address).await.map_err(call("unban"))?;
            println!("{address} is not banned");
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Allowlist(j) => {
            let list = fw.allowlist().await.map_err(call("allowlist"))?;
            if j.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("the allowlist is empty");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        a.cidr.clone(),
                        time(a.added_at),
                        a.added_by.clone(),
                        a.comment.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["CIDR", "ADDED (UTC)", "BY", "COMMENT"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Allow { cidr, comment } => {
            fw.allow(TOKEN, &cidr, &comment)
                .await
                .map_err(call("allow"))?;
            println!("{cidr} allowlisted");
            Ok(ExitCode::SUCCESS)
        }
        FirewallCommand::Disallow { cidr } => {
            fw.disallow(TOKEN, &cidr).await.map_err(call("disallow"))?;
            println!("{cidr} removed from the allowlist");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn sources(s: &[String]) -> String {
    if s.is_empty() {
        "anywhere".to_owned()
    } else {
        s.join(",")
    }
}

fn rules(rules: Vec<Rule>, json: bool, empty: &str) -> Result<ExitCode> {
    if json {
        return print_json(&rules);
    }
    if rules.is_empty() {
        println!("{empty}");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let expires = if r.expires_at == 0 {
                format!("permanent: {}", r.permanent_reason)
            } else {
                time(r.expires_at)
            };
            vec![
                r.id.to_string(),
                format!("{}/{}", r.protocol, r.ports),
                sources(&r.sources),
                expires,
                time(r.reviewed_at),
                r.added_by.clone(),
                r.comment.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "ID",
                "PORTS",
                "FROM",
                "EXPIRES (UTC)",
                "REVIEWED",
                "BY",
                "COMMENT"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn changed(change: &Change, json: bool, what: &str) -> Result<ExitCode> {
    if json {
        return print_json(change);
    }
    println!("{what} (change {})", change.change_id);
    if change.confirm_by != 0 {
        println!(
            "this change can lock you out: it reverts at {} unless you run `rampartctl firewall confirm {}` \
             from a new session",
            time(change.confirm_by),
            change.change_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
