//! `rampartctl health`: is this boot good enough to keep? The boot-complete gate (units/rampart-boot-check.service)
//! runs it on a new version's trial boots; a person may run it any time.
//!
//! Healthy means all of: every watched unit (the Rampart daemons, the panel's socket, sshd;
//! rampart_common::units::WATCHED) is active — for the `Type=notify` daemons that means they said READY; every
//! daemon's D-Bus name answers a `Peer.Ping` (its event loop serves calls, not merely a live process); and the
//! panel (socket-activated) starts on a local connection to its port. With `--wait`, unhealthy results are retried
//! until the deadline: on a slow first boot the last units may still be starting. Except two that waiting cannot
//! mend, which fail at once: a unit that failed, and a daemon that systemd had to restart during this boot (it
//! crashed or timed out at least once, so the version is not good, even if the restart came up).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use rampart_common::units::{self, WATCHED};

/// The daemons with a bus name, each of which must answer a ping.
const BUS_NAMES: &[&str] = &[
    rampart_interfaces::audit::BUS_NAME,
    rampart_interfaces::identity::BUS_NAME,
    rampart_interfaces::firewall::BUS_NAME,
    rampart_interfaces::ssh::BUS_NAME,
    rampart_interfaces::update::BUS_NAME,
    rampart_interfaces::tenant::BUS_NAME,
    rampart_interfaces::monitor::BUS_NAME,
];
/// The panel: its socket unit listens here; a connection starts the service.
const PANEL: (&str, &str) = ("127.0.0.1:443", "rampart-webd.service");

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Retry for up to this long (e.g. `5min`) before calling the machine unhealthy.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    wait: Duration,
}

pub async fn run(conn: &zbus::Connection, args: HealthArgs) -> Result<ExitCode> {
    let deadline = Instant::now() + args.wait;
    loop {
        let (problems, fatal) = problems(conn).await;
        if problems.is_empty() {
            println!(
                "healthy: {} units active, {} daemons answer, the panel starts",
                WATCHED.len(),
                BUS_NAMES.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if fatal || Instant::now() >= deadline {
            for p in &problems {
                println!("unhealthy: {p}");
            }
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What is wrong, and whether any of it is beyond waiting for.
async fn problems(conn: &zbus::Connection) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut fatal = false;
    match units::list(conn, WATCHED).await {
        Ok(states) => {
            for name in WATCHED {
                match states.iter().find(|s| s.unit == *name) {
                    Some(s) if s.active == "active" => {}
                    Some(s) => {
                        fatal |= s.active == "failed";
                        out.push(format!("{name} is {} ({})", s.active, s.sub));
                    }
                    None => out.push(format!("{name} is not loaded")),
                }
            }
        }
        Err(e) => out.push(format!("cannot ask systemd for unit states: {e}")),
    }
    for name in WATCHED.iter().filter(|n| n.ends_with(".service")) {
        match units::restarts(conn, name).await {
            Ok(0) => {}
            Ok(n) => {
                fatal = true;
                out.push(format!("{name} was restarted {n} times during this boot"));
            }
            Err(e) => out.push(format!("cannot read {name}'s restart count: {e}")),
        }
    }
    for name in BUS_NAMES {
        if let Err(e) = ping(conn, name).await {
            out.push(format!("{name} does not answer: {e}"));
        }
    }
    if let Err(e) = panel(conn).await {
        out.push(format!("the panel: {e}"));
    }
    (out, fatal)
}

async fn ping(conn: &zbus::Connection, name: &str) -> zbus::Result<()> {
    let call = conn.call_method(
        Some(name),
        "/",
        Some("org.freedesktop.DBus.Peer"),
        "Ping",
        &(),
    );
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(zbus::Error::Failure("no reply within 5 s".into())),
    }
}

/// Connects to the panel's port (which socket-activates rampart-webd) and waits up to 10 s for the service to
/// be active: the TLS server is up, not just the listening socket systemd holds.
async fn panel(conn: &zbus::Connection) -> Result<(), String> {
    let (addr, unit) = PANEL;
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection to {addr} within 5 s"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let until = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let state = units::list(conn, &[unit])
            .await
            .map_err(|e| e.to_string())?;
        match state.first() {
            Some(s) if s.active == "active" => break Ok(()),
            Some(s) if Instant::now() >= until => {
                break Err(format!(
                    "{unit} is {} ({}) after a connection",
                    s.active, s.sub
                ))
            }
            None if Instant::now() >= until => {
                break Err(format!("{unit} did not start on a connection"))
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    drop(stream);
    result
}
