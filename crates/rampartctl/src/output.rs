//! What every `rampartctl` subcommand prints the same way: the `--json` switch, times, daemon refusals, JSON
//! documents. (`audit` keeps its own time format: it shows microsecond records.)

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `never` → 0; an RFC 3339 time; or a duration from now.
pub fn parse_expiry(s: &str) -> Result<u64, String> {
    if s == "never" {
        return Ok(0);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| format!("{s:?} is before 1970"));
    }
    humantime::parse_duration(s)
        .map(|d| now().saturating_add(d.as_secs()))
        .map_err(|_| format!("{s:?} is not `never`, an RFC 3339 time (2026-12-31T00:00:00Z) or a duration (90days)"))
}
