//! `rampartctl audit list|verify`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_interfaces::audit::{AuditProxy, Outcome, Record, MAX_PAGE};
use rampart_interfaces::error::message;

use crate::table;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show records, newest first.
    List(ListArgs),
    /// Walk the whole hash chain; exit 3 and name the first broken record if it does not hold.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only records by this actor (e.g. root@console).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action; a trailing * matches a prefix (e.g. 'firewall.*').
    #[arg(long)]
    action: Option<String>,
    /// Only records about this target.
    #[arg(long)]
    target: Option<String>,
    /// Only this outcome: allowed, denied or failed.
    #[arg(long, value_parser = parse_outcome)]
    outcome: Option<Outcome>,
    /// Only records at or after this time: RFC 3339 (2026-11-24T10:00:00Z) or an age such as 2h, 3days.
    #[arg(long, value_parser = parse_time)]
    since: Option<String>,
    /// Only records at or before this time (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    until: Option<String>,
    /// How many records to show (default 50); 0 shows all.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Oldest first.
    #[arg(long)]
    reverse: bool,
    /// Print JSON (an array of records) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    s.parse()
}

/// An RFC 3339 time passes through; an age ("2h") becomes the RFC 3339 time that long ago.
fn parse_time(s: &str) -> Result<String, String> {
    if humantime::parse_rfc3339_weak(s).is_ok() {
        return Ok(s.to_owned());
    }
    let age = humantime::parse_duration(s).map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor an age (2h, 3days)")
    })?;
    let at = SystemTime::now()
        .checked_sub(age)
        .ok_or_else(|| format!("{s:?} is too far back"))?;
    Ok(humantime::format_rfc3339_seconds(at).to_string())
}

pub async fn run(conn: &zbus::Connection, cmd: AuditCommand) -> Result<ExitCode> {
    let proxy = AuditProxy::new(conn)
        .await
        .context("cannot reach rampart-auditd")?;
    match cmd {
        AuditCommand::List(args) => list(&proxy, args).await,
        AuditCommand::Verify { json } => verify(&proxy, json).await,
    }
}

async fn list(proxy: &AuditProxy<'_>, args: ListArgs) -> Result<ExitCode> {
    let mut filters = HashMap::new();
    let pairs = [
        ("actor", args.actor),
        ("action", args.action),
        ("target", args.target),
        ("outcome", args.outcome.map(|o| o.as_str().to_owned())),
        ("since", args.since),
        ("until", args.until),
    ];
    for (key, value) in pairs {
        if let Some(v) = value {
            filters.insert(key.to_owned(), v);
        }
    }
    let want = if args.limit == 0 {
        u64::MAX
    } else {
        args.limit
    };
    let mut records: Vec<Record> = Vec::new();
    let mut cursor = 0;
    loop {
        let page_size = u32::try_from((want - records.len() as u64).min(u64::from(MAX_PAGE)))
            .unwrap_or(MAX_PAGE);
        let page = proxy
            .query(filters.clone(), cursor, page_size, !args.reverse)
            .await
            .map_err(|e| anyhow::anyhow!("audit query refused: {}", message(&e)))?;
        records.extend(page.records);
        if page.next_cursor == 0 || records.len() as u64 >= want {
            break;
        }
        cursor = page.next_cursor;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("no audit records match");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                format_time(r.time_us),
                r.actor.clone(),
                r.peer.clone(),
                r.action.clone(),
                r.target.clone(),
                r.outcome.clone(),
                if r.details == "{}" {
                    String::new()
                } else {
                    r.details.clone()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "SEQ",
                "TIME (UTC)",
                "ACTOR",
                "PEER",
                "ACTION",
                "TARGET",
                "OUTCOME",
                "DETAILS"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(proxy: &AuditProxy<'_>, json: bool) -> Result<ExitCode> {
    let v = proxy
        .verify()
        .await
        .map_err(|e| anyhow::anyhow!("audit verify failed: {}", message(&e)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if v.ok {
        let head = if v.head_hash.is_empty() {
            "(empty log)".to_owned()
        } else {
            v.head_hash.clone()
        };
        println!("audit chain OK: {} records, head {head}", v.count);
    } else {
        println!(
            "audit chain BROKEN at record {}: {}",
            v.broken_seq, v.problem
        );
        println!(
            "records 1..{} verify; the last good head is {}",
            v.count, v.head_hash
        );
    }
    if !v.ok {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn format_time(time_us: i64) -> String {
    match u64::try_from(time_us) {
        Ok(us) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(us)).to_string()
        }
        Err(_) => format!("{time_us}us (before 1970)"),
    }
}
