//! What monitoring costs a tenant (`make bench`; root only, prints SKIPPED otherwise).
//!
//! Workloads run inside a tenant slice of a private cgroup tree: loopback TCP throughput (sender and receiver both
//! the tenant's, so every segment passes the egress and the ingress program), small UDP datagrams sent with an
//! address (sendto: the sendmsg hook runs for each one as well) and fork+exec of /bin/true. Each is measured with
//! the programs detached and attached, alternating, several times; the medians are compared. Once with the
//! tenant alone and once with 100 tenant slices present (so 100 entries in the counters map).
//!
//! The kernel's own view of the cost is measured too: with `kernel.bpf_stats_enabled` on for one extra run, each
//! program's average run time per invocation (this is what "ns added per packet/exec" means at the source).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Tenant, Tree};
use rampart_monitord::bpf::{Options, Programs};
use rampart_monitord::cgroups::cgroup_id;

const REPS: usize = 7;
const SECS: &str = "3";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs one workload in `dir` and returns its rate (per second).
fn measure(dir: &std::path::Path, workload: &str) -> f64 {
    let mut t = Tenant::start(dir, &[workload, SECS]);
    let rate: f64 = t.line("rate").parse().unwrap();
    t.finish();
    rate
}

struct Row {
    workload: &'static str,
    unit: &'static str,
    off: f64,
    on: f64,
}

fn run(tenants: usize) -> Vec<Row> {
    let tree = Tree::new();
    let dirs: Vec<_> = (0..tenants)
        .map(|i| tree.tenant(&format!("t{i}")))
        .collect();
    let work = &dirs[0];
    let mut rows = Vec::new();
    let cases = [
        ("tcp-rate", "MiB/s", "tcp", true),
        ("udp-rate", "datagrams/s", "udp", true),
        ("udp-rate", "datagrams/s", "udp (udp_sends = false)", false),
        ("exec-rate", "execs/s", "exec", true),
    ];
    for (role, unit, workload, udp_sends) in cases {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            off.push(measure(work, role));
            let options = Options {
                udp_sends,
                ..Options::default()
            };
            let progs = Programs::load(&tree.parent, &options).unwrap();
            for d in &dirs {
                progs.add_tenant(cgroup_id(d).unwrap()).unwrap();
            }
            on.push(measure(work, role));
            drop(progs);
        }
        rows.push(Row {
            workload,
            unit,
            off: median(off),
            on: median(on),
        });
    }
    rows
}

/// Average ns per run of each program over one pass of every workload, from the kernel's BPF statistics.
fn program_costs() -> Vec<(String, u64, f64)> {
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(stats).unwrap_or_default();
    std::fs::write(stats, "1").unwrap();
    let tree = Tree::new();
    let dir = tree.tenant("t0");
    let progs = Programs::load(&tree.parent, &Options::default()).unwrap();
    progs.add_tenant(cgroup_id(&dir).unwrap()).unwrap();
    for w in ["tcp-rate", "udp-rate", "exec-rate"] {
        measure(&dir, w);
    }
    let costs = progs
        .program_stats()
        .into_iter()
        .filter(|(_, runs, _)| *runs > 0)
        .map(|(name, runs, ns)| (name, runs, ns as f64 / runs as f64))
        .collect();
    std::fs::write(stats, before.trim()).unwrap();
    costs
}

fn main() {
    if let Some(role) = common::role() {
        common::role_main(&role);
        return;
    }
    if !rampart_common::testing::require_root("monitord overhead benchmark") {
        return;
    }
    println!("# cargo bench -p rampart-monitord --bench overhead");
    println!("# {REPS} alternating repetitions of {SECS} s each, medians; the workload runs in one tenant slice");
    for tenants in [1usize, 100] {
        println!("\n## {tenants} tenant slice(s)\n");
        println!("| workload | unit | without monitoring | with rampart-monitord | ratio | ns added per op |");
        println!("|---|---|---|---|---|---|");
        for r in run(tenants) {
            // TCP is in MiB/s: per-op cost is per 64 KiB GSO segment-ish and not meaningful; shown for the others.
            let added = if r.workload == "tcp" {
                "-".to_owned()
            } else {
                format!("{:.0}", (1.0 / r.on - 1.0 / r.off) * 1e9)
            };
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.3} | {added} |",
                r.workload,
                r.unit,
                r.off,
                r.on,
                r.on / r.off
            );
        }
    }
    println!("\n## program cost (kernel.bpf_stats_enabled=1 for one pass of every workload)\n");
    println!("| program | runs | ns per run |");
    println!("|---|---|---|");
    for (name, runs, ns) in program_costs() {
        println!("| {name} | {runs} | {ns:.0} |");
    }
    std::thread::sleep(Duration::from_millis(10));
}
