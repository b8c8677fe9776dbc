//! `rampartctl tenant …`: hosting customers (rampart-tenantd): each a user with an SFTP-only, chrooted login, a
//! directory and a slice with its plan's limits. Every change is authorized and audited by the daemon; root on
//! the console passes an empty session token. SSH keys of a tenant are added like anyone's:
//! `rampartctl ssh key-add NAME key.pub`. A tenant's long-running services (`service-start`, `service-stop`,
//! `services`) run in its slice as its user; rampart-tenantd keeps them and starts them again after a reboot.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use rampart_interfaces::tenant::{Plan, ServiceInfo, Tenant, TenantProxy, STATE_DELETED};

use crate::output::{call, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Tenants with their state, plan and uid (deleted ones until their purge).
    List(Json),
    /// The configured plans and their limits.
    Plans(Json),
    /// Create a tenant: `create shop --plan small`.
    Create {
        name: String,
        #[arg(long)]
        plan: String,
        #[command(flatten)]
        json: Json,
    },
    /// Move a tenant to another plan; its limits change at once: `plan shop large`.
    Plan {
        name: String,
        plan: String,
        #[command(flatten)]
        json: Json,
    },
    /// Stop every process of a tenant and refuse its logins; its data stays.
    Suspend {
        name: String,
        /// Why (kept with the tenant and in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        json: Json,
    },
    /// Let a suspended tenant, or a deleted one before its purge, log in again.
    Resume {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Stop a tenant and refuse its logins; its data is removed for good after the retention period.
    Delete {
        name: String,
        /// Why (kept with the tenant and in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        json: Json,
    },
    /// Start a long-running service of a tenant, kept across reboots:
    /// `service-start shop web -- /usr/bin/python3 -m http.server 8080`. It runs as the tenant in its slice and
    /// data directory (its working directory, the only place it may write); the command is run as is, no shell.
    /// The command line is recorded in the audit log: keep secrets in files in the data directory.
    ServiceStart {
        tenant: String,
        /// Lowercase letters, digits and '-'; the unit is tenant-TENANT-NAME.service.
        name: String,
        /// The program (an absolute path) and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "ARGV")]
        argv: Vec<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Stop a tenant's service and forget it: `service-stop shop web`.
    ServiceStop { tenant: String, name: String },
    /// A tenant's services and their state.
    Services {
        tenant: String,
        #[command(flatten)]
        json: Json,
    },
}

pub async fn run(conn: &zbus::Connection, cmd: TenantCommand) -> Result<ExitCode> {
    let api = TenantProxy::new(conn)
        .await
        .context("cannot reach rampart-tenantd")?;
    let (tenant, json) = match cmd {
        TenantCommand::ServiceStart {
            tenant,
            name,
            argv,
            json,
        } => {
            let service = api
                .start_service(TOKEN, &tenant, &name, argv)
                .await
                .map_err(call("service-start"))?;
            return show_services(&[service], json.json, &tenant);
        }
        TenantCommand::ServiceStop { tenant, name } => {
            api.stop_service(TOKEN, &tenant, &name)
                .await
                .map_err(call("service-stop"))?;
            println!("{tenant}: service {name} stopped and removed");
            return Ok(ExitCode::SUCCESS);
        }
        TenantCommand::Services { tenant, json } => {
            let services = api.services(&tenant).await.map_err(call("services"))?;
            return show_services(&services, json.json, &tenant);
        }
        TenantCommand::List(j) => {
            let tenants = api.list().await.map_err(call("list"))?;
            return list(&tenants, j.json);
        }
        TenantCommand::Plans(j) => {
            let plans = api.plans().await.map_err(call("plans"))?;
            return show_plans(&plans, j.json);
        }
        TenantCommand::Create { name, plan, json } => (
            api.create(TOKEN, &name, &plan)
                .await
                .map_err(call("create"))?,
            json,
        ),
        TenantCommand::Plan { name, plan, json } => (
            api.set_plan(TOKEN, &name, &plan)
                .await
                .map_err(call("plan"))?,
            json,
        ),
        TenantCommand::Suspend { name, reason, json } => (
            api.suspend(TOKEN, &name, &reason)
                .await
                .map_err(call("suspend"))?,
            json,
        ),
        TenantCommand::Resume { name, json } => (
            api.resume(TOKEN, &name).await.map_err(call("resume"))?,
            json,
        ),
        TenantCommand::Delete { name, reason, json } => (
            api.delete(TOKEN, &name, &reason)
                .await
                .map_err(call("delete"))?,
            json,
        ),
    };
    if json.json {
        return print_json(&tenant);
    }
    show(&tenant);
    Ok(ExitCode::SUCCESS)
}

fn show(t: &Tenant) {
    println!("{}: {} on plan {}", t.name, t.state, t.plan);
    println!("uid:       {}", t.uid);
    println!("slice:     {}", t.slice);
    println!("directory: {} (SFTP chroot; files in data/)", t.directory);
    if !t.reason.is_empty() {
        println!("reason:    {}", t.reason);
    }
    if t.state == STATE_DELETED {
        println!("purged at: {}", time(t.purge_at));
    }
}

fn list(tenants: &[Tenant], json: bool) -> Result<ExitCode> {
    if json {
        return print_json(&tenants);
    }
    if tenants.is_empty() {
        println!("no tenants; create one with `rampartctl tenant create NAME --plan PLAN`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            let note = match &t.state[..] {
                STATE_DELETED => format!("purged {}: {}", time(t.purge_at), t.reason),
                _ => t.reason.clone(),
            };
            vec![
                t.name.clone(),
                t.state.clone(),
                t.plan.clone(),
                t.uid.to_string(),
                time(t.created_at),
                note,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["NAME", "STATE", "PLAN", "UID", "CREATED", "NOTE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

fn show_services(services: &[ServiceInfo], json: bool, tenant: &str) -> Result<ExitCode> {
    if json {
        return print_json(&services);
    }
    if services.is_empty() {
        println!(
            "{tenant} has no services; start one with `rampartctl tenant service-start {tenant} NAME -- PROGRAM ARGS...`"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{} ({})", s.active, s.sub),
                s.unit.clone(),
                time(s.created_at),
                command_line(&s.argv),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["NAME", "STATE", "UNIT", "STARTED", "COMMAND"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// A command line for reading: arguments with spaces, quotes or control characters quoted (`{:?}`), so a
/// tenant's argument cannot pass for two or move the terminal's cursor.
fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'));
            if plain {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as systemd shows them (`512M`, `8G`); exact multiples only, else bytes.
fn size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn show_plans(plans: &[Plan], json: bool) -> Result<ExitCode> {
    if json {
        return print_json(&plans);
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}%", p.cpu_percent),
                size(p.memory_max),
                p.io_weight.to_string(),
                p.tasks_max.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["PLAN", "CPU", "MEMORY", "IO WEIGHT", "TASKS"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_like_systemd() {
        assert_eq!(super::size(512 << 20), "512M");
        assert_eq!(super::size(8 << 30), "8G");
        assert_eq!(super::size(1536 << 20), "1536M");
        assert_eq!(super::size(1000), "1000");
    }

    #[test]
    fn command_lines_read_unambiguously() {
        let argv = ["/usr/bin/env", "a b", "", "x\u{1b}[2J", "it's"].map(str::to_owned);
        assert_eq!(
            super::command_line(&argv),
            r#"/usr/bin/env "a b" "" "x\u{1b}[2J" "it's""#
        );
    }
}
