//! `rampartctl update …`: signed updates into the inactive slot (rampart-updated). `check` verifies the source's
//! metadata and says what it offers; `apply` starts the install in the background and returns — `status` shows
//! the progress. Every change is authorized and audited by the daemon; root on the console passes an empty
//! session token.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use rampart_interfaces::update::{Status, UpdateProxy, CHECK_AVAILABLE, CHECK_REFUSED};

use crate::output::{call, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Phase, versions, slots, progress and the last error.
    Status(Json),
    /// Past update attempts and how they ended.
    History(Json),
    /// Verify the configured source's metadata and show what it offers (exit 1 when it is refused).
    Check(Json),
    /// Install the verified release into the inactive slot (or resume one in progress); returns at once.
    Apply {
        /// Reboot as soon as the boot entry is written, instead of in the maintenance window.
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Stop an update before its boot entry is written.
    Cancel(Json),
    /// What the update timer runs: check, then apply (or resume) when a release is available; the reboot comes
    /// in the maintenance window. Exit 1 only when the source was refused.
    Auto,
}

pub async fn run(conn: &zbus::Connection, cmd: UpdateCommand) -> Result<ExitCode> {
    let api = UpdateProxy::new(conn)
        .await
        .context("cannot reach rampart-updated")?;
    match cmd {
        UpdateCommand::Status(j) => {
            let s = api.status().await.map_err(call("status"))?;
            show(&s, j.json)
        }
        UpdateCommand::History(j) => {
            let h = api.history().await.map_err(call("history"))?;
            if j.json {
                return print_json(&h);
            }
            if h.is_empty() {
                println!("no updates attempted yet");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = h
                .iter()
                .map(|a| {
                    vec![
                        a.version.clone(),
                        time(a.started),
                        time(a.finished),
                        a.outcome.clone(),
                        a.reason.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["VERSION", "STARTED", "FINISHED", "OUTCOME", "REASON"],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        UpdateCommand::Check(j) => {
            let c = api.check(TOKEN).await.map_err(call("check"))?;
            let code = if c.state == CHECK_REFUSED {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            if j.json {
                print_json(&c)?;
            } else {
                println!("{}: {}", c.state, c.message);
            }
            Ok(code)
        }
        UpdateCommand::Apply { now, json } => {
            let s = api.apply(TOKEN, now).await.map_err(call("apply"))?;
            if !json.json {
                println!("started; follow it with `rampartctl update status`");
            }
            show(&s, json.json)
        }
        UpdateCommand::Auto => {
            let s = api.status().await.map_err(call("status"))?;
            if !s.available || s.busy {
                println!("{}", s.message);
                return Ok(ExitCode::SUCCESS);
            }
            let c = api.check(TOKEN).await.map_err(call("check"))?;
            println!("{}: {}", c.state, c.message);
            match &c.state[..] {
                CHECK_AVAILABLE => {
                    let s = api.apply(TOKEN, false).await.map_err(call("apply"))?;
                    println!(
                        "applying {}; follow it with `rampartctl update status`",
                        c.version
                    );
                    show(&s, false)
                }
                CHECK_REFUSED => Ok(ExitCode::FAILURE),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        UpdateCommand::Cancel(j) => {
            let s = api.cancel(TOKEN).await.map_err(call("cancel"))?;
            show(&s, j.json)
        }
    }
}

fn show(s: &Status, json: bool) -> Result<ExitCode> {
    if json {
        return print_json(s);
    }
    println!("{}", s.message);
    if !s.available {
        return Ok(ExitCode::SUCCESS);
    }
    println!("running: {} from {}", s.running_version, s.slot);
    println!(
        "phase: {}{}",
        s.phase,
        if s.busy { " (working)" } else { "" }
    );
    if !s.update_version.is_empty() {
        println!("update: {} into {}", s.update_version, s.target_slot);
    }
    if let Some(pct) = s.bytes_done.saturating_mul(100).checked_div(s.bytes_total) {
        let eta = match s.eta_secs {
            0 => String::new(),
            e => format!(", about {e} s left"),
        };
        println!(
            "progress: {pct}% ({} of {} chunks){eta}",
            s.chunks_done, s.chunks_total
        );
    }
    if s.reboot_pending {
        println!("reboot pending: the new version starts at the next boot");
    }
    if !s.last_error.is_empty() {
        println!("last error: {}", s.last_error);
    }
    if !s.failed_versions.is_empty() {
        println!("never retried: {}", s.failed_versions.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
