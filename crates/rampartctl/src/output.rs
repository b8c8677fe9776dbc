//! What every `rampartctl` subcommand prints the same way: the `--json` switch, times, daemon refusals, JSON
//! documents. (`audit` keeps its own time format: it shows microsecond records.)

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use rampart_interfaces::error::message;
use serde::Serialize;

/// Root on the console: no session token.
pub const TOKEN: &str = "";

#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Unix seconds as RFC 3339, `-` for 0 ("none").
pub fn time(secs: u64) -> String {
    if secs == 0 {
        return "-".to_owned();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Turns a daemon's error reply into "`what` refused: <the daemon's message> (<error name>)".
pub fn call(what: &str) -> impl FnOnce(zbus::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what} refused: {}", message(&e))
}

/// Prints one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}
