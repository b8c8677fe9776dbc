//! `make bench` for the panel. Prints figures and ratios against baselines measured in the same run:
//! - authenticated API reads (`GET /api/v1/accounts`: TLS, HTTP, identityd's Authorize, identityd's Accounts)
//!   per second and their p50/p99, beside the stylesheet through the same TLS/HTTP stack with no bus call (the
//!   baseline), with 8 keep-alive clients;
//! - the cost of one login's password check with the shipped argon2id parameters (m = 64 MiB, t = 3, p = 1),
//!   beside OWASP's minimum (m = 19 MiB, t = 2) and the test parameters, and what that means for guessing.
//!
//! Run: `cargo bench -p rampart-webd` (release build). Idle memory of the daemons: `tests/bench/rss`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Panel, GOOD};

const CLIENTS: usize = 8;
const SECONDS: u64 = 5;

struct Run {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn hammer(panel: &Panel, path: &str, token: &str) -> Run {
    let stop = Instant::now() + Duration::from_secs(SECONDS);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            // One client (one keep-alive connection pool) per task, like separate browsers.
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap();
            let (url, token) = (panel.url(path), token.to_owned());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while Instant::now() < stop {
                    let t = Instant::now();
                    let mut r = client.get(&url);
                    if !token.is_empty() {
                        r = r.bearer_auth(&token);
                    }
                    match r.send().await {
                        Ok(resp) if resp.status() == 200 => {
                            let _ = resp.bytes().await;
                            lat.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Run {
        per_sec: all.len() as f64 / secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

fn hash_ms(memory_kib: u32, iterations: u32) -> (f64, f64) {
    let hasher = rampart_identityd::password::Hasher::new(memory_kib, iterations, 1).unwrap();
    let mut times = Vec::new();
    let mut phc = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        phc = hasher.hash(GOOD).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let t = Instant::now();
    assert!(hasher.verify(GOOD, &phc));
    (times[2], t.elapsed().as_secs_f64() * 1000.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let panel = Panel::start().await;
        let secret = panel.complete_setup("alice").await;
        let (token, _) = panel.api_login("alice", GOOD, &secret).await;
        // Warm up both paths (TLS sessions, caches).
        hammer(&panel, "/static/style.css", "").await;
        let baseline = hammer(&panel, "/static/style.css", "").await;
        let api = hammer(&panel, "/api/v1/accounts", &token).await;
        println!("\n== panel requests ({CLIENTS} keep-alive clients, {SECONDS} s each, 2 cores) — cargo bench -p rampart-webd");
        println!("{:<44} {:>10} {:>9} {:>9} {:>7}", "request", "req/s", "p50 ms", "p99 ms", "errors");
        for (name, r) in [
            ("GET /static/style.css (baseline: no bus)", &baseline),
            ("GET /api/v1/accounts (Authorize + Accounts)", &api),
        ] {
            println!(
                "{:<44} {:>10.0} {:>9.2} {:>9.2} {:>7}",
                name, r.per_sec, r.p50_ms, r.p99_ms, r.errors
            );
        }
        println!(
            "authenticated read / baseline: {:.2}x the throughput, {:.1}x the p99",
            api.per_sec / baseline.per_sec,
            api.p99_ms / baseline.p99_ms
        );
    });

    println!(
        "\n== login cost: one argon2id password check (median of 5) — cargo bench -p rampart-webd"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>16}",
        "parameters", "hash ms", "verify ms", "guesses/s/core"
    );
    for (name, m, t) in [
        ("shipped: m=64 MiB, t=3, p=1", 65_536, 3),
        ("OWASP minimum: m=19 MiB, t=2, p=1", 19_456, 2),
        ("tests: m=1 MiB, t=1, p=1", 1024, 1),
    ] {
        let (h, v) = hash_ms(m, t);
        println!("{name:<40} {h:>10.1} {v:>10.1} {:>16.1}", 1000.0 / v);
    }
    println!(
        "(identityd runs at most 2 checks at once, so a login flood costs at most 128 MiB and 2 cores; an attacker \
         with a stolen database gets the guesses/s above per core)"
    );
}
