//! `rampartctl ssh …` (being written).

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Show the current state.
    List,
}

pub async fn run(_conn: &zbus::Connection, _cmd: SshCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
