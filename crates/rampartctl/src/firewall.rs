//! `rampartctl firewall …` (being written).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Show the current state.
    List,
}

pub async fn run(_conn: &zbus::Connection, _cmd: FirewallCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
