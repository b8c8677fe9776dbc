//! `rampartctl monitor …`: what rampart-monitord sees of every tenant — a live table (`top`), one tenant's ports,
//! alerts, the monitor's own health (event losses, program cost), the Prometheus text, and per-tenant enforcement
//! (authorized and audited by the daemon; root on the console passes an empty session token).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use futures_lite::StreamExt;
use rampart_interfaces::monitor::{Alert, Enforcement, MonitorProxy, TenantCounters};

use crate::output::{call, print_json, time, Json, TOKEN};
use crate::table;

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Every tenant's traffic, connections, executions and CPU, refreshed until Ctrl-C.
    Top(TopArgs),
    /// One tenant's counters, outbound ports and listening ports.
    Tenant {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Alerts, oldest first.
    Alerts(AlertArgs),
    /// Attached programs, events received and lost, sequence gaps, programs' run time.
    Health(Json),
    /// The counters in the Prometheus text format (for node_exporter's textfile collector or a scrape proxy).
    Metrics,
    /// A tenant's enforcement (off unless set).
    Enforcement {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Sets a tenant's enforcement; applies in the kernel at once. Lists are comma-separated ports.
    Enforce(EnforceArgs),
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between refreshes (rates are per second over this interval).
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// Print one table and exit.
    #[arg(long)]
    once: bool,
    /// One sample as JSON (totals and rates), then exit.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AlertArgs {
    /// Only alerts after this id.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// At most this many (the newest when --since is not given).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Keep printing new alerts as they are raised.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    json: Json,
}

#[derive(Debug, Args)]
pub struct EnforceArgs {
    name: String,
    /// Refuse outbound connections (TCP and UDP) to these ports, e.g. 25,3333.
    #[arg(long, value_delimiter = ',', value_parser = port)]
    deny_outbound: Vec<u16>,
    /// Let the tenant listen (or bind) only on these ports, e.g. 80,443.
    #[arg(long, value_delimiter = ',', value_parser = port)]
    listen_only: Vec<u16>,
    /// Turn every restriction off.
    #[arg(long, conflicts_with_all = ["deny_outbound", "listen_only"])]
    off: bool,
}

fn port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a port (1-65535)")),
    }
}

pub async fn run(conn: &zbus::Connection, cmd: MonitorCommand) -> Result<ExitCode> {
    let api = MonitorProxy::new(conn)
        .await
        .context("cannot reach rampart-monitord")?;
    match cmd {
        MonitorCommand::Top(args) => top(&api, &args).await,
        MonitorCommand::Tenant { name, json } => {
            let d = api.tenant(&name).await.map_err(call("tenant"))?;
            if json.json {
                return print_json(&d);
            }
            print!("{}", counters_table(&[d.counters], None));
            let rows: Vec<Vec<String>> = d
                .outbound
                .iter()
                .map(|p| vec![format!("{}/{}", p.protocol, p.port), p.count.to_string()])
                .collect();
            println!("\noutbound:");
            print!("{}", table::render(&["PORT", "CONNECTIONS"], &rows));
            let rows: Vec<Vec<String>> = d
                .listening
                .iter()
                .map(|p| vec![format!("{}/{}", p.protocol, p.port), time(p.first_seen)])
                .collect();
            println!("\nlistening:");
            print!("{}", table::render(&["PORT", "FIRST SEEN"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Alerts(args) => alerts(&api, &args).await,
        MonitorCommand::Health(j) => {
            let h = api.health().await.map_err(call("health"))?;
            if j.json {
                return print_json(&h);
            }
            println!("attached at {} ({} tenant slices)", h.cgroup, h.tenants);
            let rows: Vec<Vec<String>> = h
                .events
                .iter()
                .map(|e| {
                    vec![
                        e.kind.clone(),
                        e.received.to_string(),
                        e.dropped.to_string(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["EVENTS", "RECEIVED", "LOST"], &rows));
            println!("sequence gaps seen: {}", h.gaps);
            if !h.bpf_stats {
                println!(
                    "program run time: not counted (sysctl kernel.bpf_stats_enabled=1 turns it on)"
                );
            }
            let rows: Vec<Vec<String>> = h
                .programs
                .iter()
                .map(|p| {
                    let avg = p.run_time_ns.checked_div(p.run_count).unwrap_or(0);
                    vec![p.name.clone(), p.run_count.to_string(), format!("{avg} ns")]
                })
                .collect();
            print!("{}", table::render(&["PROGRAM", "RUNS", "AVERAGE"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Metrics => {
            print!("{}", api.prometheus().await.map_err(call("metrics"))?);
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Enforcement { name, json } => {
            let e = api.enforcement(&name).await.map_err(call("enforcement"))?;
            if json.json {
                return print_json(&e);
            }
            show_enforcement(&e);
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Enforce(args) => {
            let e = Enforcement {
                tenant: args.name.clone(),
                deny_outbound: args.deny_outbound.clone(),
                restrict_listen: !args.off && !args.listen_only.is_empty(),
                allow_listen: args.listen_only.clone(),
            };
            api.set_enforcement(TOKEN, &e)
                .await
                .map_err(call("enforce"))?;
            show_enforcement(
                &api.enforcement(&args.name)
                    .await
                    .map_err(call("enforcement"))?,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ports(p: &[u16]) -> String {
    if p.is_empty() {
        return "-".to_owned();
    }
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

fn show_enforcement(e: &Enforcement) {
    println!("tenant {}", e.tenant);
    println!("  outbound denied: {}", ports(&e.deny_outbound));
    if e.restrict_listen {
        println!("  may listen only on: {}", ports(&e.allow_listen));
    } else {
        println!("  listening: unrestricted");
    }
}

/// Bytes in a short human form (binary prefixes).
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The table of `now`; with `before` and the seconds between them, rates instead of totals.
fn counters_table(now: &[TenantCounters], before: Option<(&[TenantCounters], f64)>) -> String {
    let rows: Vec<Vec<String>> = now
        .iter()
        .map(|c| {
            let cpu = if c.cpu_limit_percent > 0 {
                format!("{}%/{}%", c.cpu_percent, c.cpu_limit_percent)
            } else {
                format!("{}%", c.cpu_percent)
            };
            match before
                .and_then(|(b, secs)| Some((b.iter().find(|p| p.tenant == c.tenant)?, secs)))
            {
                Some((p, secs)) => {
                    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                    vec![
                        c.tenant.clone(),
                        format!("{}/s", bytes(rate(c.rx_bytes, p.rx_bytes))),
                        format!("{}/s", bytes(rate(c.tx_bytes, p.tx_bytes))),
                        format!(
                            "{:.0}",
                            rate(c.rx_packets + c.tx_packets, p.rx_packets + p.tx_packets)
                        ),
                        format!("{:.1}", rate(c.connects, p.connects)),
                        format!("{:.1}", rate(c.execs, p.execs)),
                        c.flagged_execs.to_string(),
                        cpu,
                    ]
                }
                None => vec![
                    c.tenant.clone(),
                    bytes(c.rx_bytes as f64),
                    bytes(c.tx_bytes as f64),
                    (c.rx_packets + c.tx_packets).to_string(),
                    c.connects.to_string(),
                    c.execs.to_string(),
                    c.flagged_execs.to_string(),
                    cpu,
                ],
            }
        })
        .collect();
    let header: &[&str] = if before.is_some() {
        &[
            "TENANT",
            "IN",
            "OUT",
            "PKT/S",
            "CONN/S",
            "EXEC/S",
            "FLAGGED",
            "CPU/LIMIT",
        ]
    } else {
        &[
            "TENANT",
            "IN",
            "OUT",
            "PACKETS",
            "CONNECTS",
            "EXECS",
            "FLAGGED",
            "CPU/LIMIT",
        ]
    };
    table::render(header, &rows)
}

async fn top(api: &MonitorProxy<'_>, args: &TopArgs) -> Result<ExitCode> {
    let interval = Duration::from_secs(args.interval.max(1));
    let mut before = api.counters().await.map_err(call("counters"))?;
    if args.once && !args.json {
        print!("{}", counters_table(&before, None));
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let started = std::time::Instant::now();
        tokio::time::sleep(interval).await;
        let now = api.counters().await.map_err(call("counters"))?;
        let secs = started.elapsed().as_secs_f64();
        if args.json {
            return print_json(
                &serde_json::json!({ "seconds": secs, "before": before, "now": now }),
            );
        }
        // Clear the screen and redraw, like top(1).
        print!(
            "\x1b[H\x1b[2J{}",
            counters_table(&now, Some((&before, secs)))
        );
        let _ = std::io::stdout().flush();
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        before = now;
    }
}

fn alert_row(a: &Alert) -> Vec<String> {
    vec![
        a.id.to_string(),
        time(a.time),
        a.tenant.clone(),
        a.kind.clone(),
        a.message.clone(),
    ]
}

async fn alerts(api: &MonitorProxy<'_>, args: &AlertArgs) -> Result<ExitCode> {
    // Subscribe before reading, so nothing raised in between is missed.
    let mut stream = if args.follow {
        Some(api.receive_alert_raised().await.map_err(call("alerts"))?)
    } else {
        None
    };
    let list = api
        .alerts(args.since, args.limit)
        .await
        .map_err(call("alerts"))?;
    const HEADER: [&str; 5] = ["ID", "TIME", "TENANT", "KIND", "WHAT"];
    if args.json.json && stream.is_none() {
        return print_json(&list);
    }
    let mut last = args.since;
    if args.json.json {
        for a in &list {
            println!("{}", serde_json::to_string(a)?);
        }
    } else {
        let rows: Vec<Vec<String>> = list.iter().map(alert_row).collect();
        print!("{}", table::render(&HEADER, &rows));
    }
    if let Some(a) = list.last() {
        last = a.id;
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(ExitCode::SUCCESS);
    };
    while let Some(signal) = stream.next().await {
        let a = signal
            .args()
            .map_err(|e| anyhow::anyhow!("malformed AlertRaised signal: {e}"))?
            .alert;
        if a.id <= last {
            continue;
        }
        last = a.id;
        if args.json.json {
            println!("{}", serde_json::to_string(&a)?);
        } else {
            println!(
                "{}  {}  {}  {}  {}",
                a.id,
                time(a.time),
                a.tenant,
                a.kind,
                a.message
            );
        }
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::SUCCESS)
}
