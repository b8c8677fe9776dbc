//! rampartctl: the command line for root on the console (or over SSH). It holds no logic of its own: every
//! command is a D-Bus call to the daemon that owns the thing, which authorizes and audits it.
//!
//! Output: a table for people, `--json` for scripts (one JSON document on stdout). Errors go to stderr once, with
//! the daemon's message. Exit codes: 0 ok, 1 error, 2 usage, 3 `audit verify` found a broken chain.

mod account;
mod audit;
mod firewall;
mod health;
mod monitor;
mod output;
mod ssh;
mod table;
mod tenant;
mod update;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rampartctl", version, about = "Control a Rampart appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accounts: create (with expiry), disable, reset 2FA, end sessions.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The host firewall: openings, commit-confirm, bans and the allowlist.
    #[command(subcommand)]
    Firewall(firewall::FirewallCommand),
    /// Whether this boot is healthy: Rampart units active, daemons answering, the panel starting.
    Health(health::HealthArgs),
    /// Tenant monitoring: live counters (top), ports, alerts, health, Prometheus text, enforcement.
    #[command(subcommand)]
    Monitor(monitor::MonitorCommand),
    /// The first-boot setup: its state, and the web wizard's one-time code.
    #[command(subcommand)]
    Setup(account::SetupCommand),
    /// SSH: port, keys and host key fingerprints.
    #[command(subcommand)]
    Ssh(ssh::SshCommand),
    /// Tenants: create, plans, suspend, resume, delete (SFTP-only users with their own slice).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Signed updates: status, history, check, apply [--now], cancel.
    #[command(subcommand)]
    Update(update::UpdateCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampartctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let conn = zbus::Connection::system().await.map_err(|e| {
            anyhow::anyhow!("cannot reach the system bus ({e}); is dbus running and are you root?")
        })?;
        match cli.command {
            Command::Account(cmd) => account::run(&conn, cmd).await,
            Command::Audit(cmd) => audit::run(&conn, cmd).await,
            Command::Firewall(cmd) => firewall::run(&conn, cmd).await,
            Command::Health(args) => health::run(&conn, args).await,
            Command::Setup(cmd) => account::run_setup(&conn, cmd).await,
            Command::Ssh(cmd) => ssh::run(&conn, cmd).await,
            Command::Monitor(cmd) => monitor::run(&conn, cmd).await,
            Command::Tenant(cmd) => tenant::run(&conn, cmd).await,
            Command::Update(cmd) => update::run(&conn, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rampartctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
