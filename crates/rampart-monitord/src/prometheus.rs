//! The Prometheus text exposition format (0.0.4): every tenant's counters, event losses and program costs. Metric
//! and label names are fixed here; label values are tenant names (checked: lowercase letters and digits) and
//! fixed words, so nothing needs escaping beyond what [`label`] does for safety.

use std::fmt::Write;

use rampart_interfaces::monitor::{Health, TenantCounters};

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, u64)>,
}

fn write_family(out: &mut String, f: &Family<'_>) {
    let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
    for (labels, value) in &f.samples {
        let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
    }
}

/// Renders the counters and the health report.
pub fn render(counters: &[TenantCounters], health: &Health) -> String {
    type Get = fn(&TenantCounters) -> u64;
    let per_tenant: [(&str, &str, &str, Get); 9] = [
        (
            "rampart_tenant_rx_bytes_total",
            "counter",
            "Bytes received by the tenant's sockets (IP headers included).",
            |c| c.rx_bytes,
        ),
        (
            "rampart_tenant_rx_packets_total",
            "counter",
            "Packets received by the tenant's sockets.",
            |c| c.rx_packets,
        ),
        (
            "rampart_tenant_tx_bytes_total",
            "counter",
            "Bytes sent by the tenant's sockets (IP headers included).",
            |c| c.tx_bytes,
        ),
        (
            "rampart_tenant_tx_packets_total",
            "counter",
            "Packets sent by the tenant's sockets.",
            |c| c.tx_packets,
        ),
        (
            "rampart_tenant_connects_total",
            "counter",
            "Outbound connections and addressed UDP sends.",
            |c| c.connects,
        ),
        (
            "rampart_tenant_execs_total",
            "counter",
            "Programs executed.",
            |c| c.execs,
        ),
        (
            "rampart_tenant_flagged_execs_total",
            "counter",
            "Executions from tmpfs, world-writable places or deleted files.",
            |c| c.flagged_execs,
        ),
        (
            "rampart_tenant_cpu_percent",
            "gauge",
            "CPU use over the last sample, percent of one CPU.",
            |c| u64::from(c.cpu_percent),
        ),
        (
            "rampart_tenant_cpu_limit_percent",
            "gauge",
            "CPU limit, percent of one CPU (0: none known).",
            |c| u64::from(c.cpu_limit_percent),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, get) in per_tenant {
        let samples = counters
            .iter()
            .map(|c| (format!("tenant=\"{}\"", label(&c.tenant)), get(c)))
            .collect();
        write_family(
            &mut out,
            &Family {
                name,
                kind,
                help,
                samples,
            },
        );
    }
    let by_kind = |get: fn(&rampart_interfaces::monitor::EventCount) -> u64| {
        health
            .events
            .iter()
            .map(|e| (format!("kind=\"{}\"", label(&e.kind)), get(e)))
            .collect::<Vec<_>>()
    };
    write_family(
        &mut out,
        &Family {
            name: "rampart_monitor_events_received_total",
            kind: "counter",
            help: "Events read from the kernel, by kind.",
            samples: by_kind(|e| e.received),
        },
    );
    write_family(
        &mut out,
        &Family {
            name: "rampart_monitor_events_dropped_total",
            kind: "counter",
            help: "Events lost in the kernel because the ring buffer was full, by kind.",
            samples: by_kind(|e| e.dropped),
        },
    );
    for (name, kind, help, value) in [
        (
            "rampart_monitor_sequence_gaps_total",
            "counter",
            "Sequence numbers the reader never saw.",
            health.gaps,
        ),
        (
            "rampart_monitor_tenants",
            "gauge",
            "Tenant slices being counted.",
            u64::from(health.tenants),
        ),
        (
            "rampart_monitor_bpf_stats_enabled",
            "gauge",
            "1 when the kernel counts BPF run time.",
            u64::from(health.bpf_stats),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, get) in [
        (
            "rampart_monitor_program_runs_total",
            "Runs of each BPF program (kernel BPF stats).",
            (|p| p.run_count) as fn(&rampart_interfaces::monitor::ProgramStats) -> u64,
        ),
        (
            "rampart_monitor_program_run_nanoseconds_total",
            "Run time of each BPF program in nanoseconds (kernel BPF stats).",
            |p| p.run_time_ns,
        ),
    ] {
        let samples = health
            .programs
            .iter()
            .map(|p| (format!("program=\"{}\"", label(&p.name)), get(p)))
            .collect();
        write_family(
            &mut out,
            &Family {
                name,
                kind: "counter",
                help,
                samples,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_interfaces::monitor::{EventCount, ProgramStats};

    #[test]
    fn every_sample_line_belongs_to_a_declared_family() {
        let counters = vec![TenantCounters {
            tenant: "shop".into(),
            rx_bytes: 10,
            rx_packets: 1,
            tx_bytes: 20,
            tx_packets: 2,
            connects: 3,
            execs: 4,
            flagged_execs: 1,
            cpu_percent: 50,
            cpu_limit_percent: 100,
        }];
        let health = Health {
            attached: true,
            cgroup: "/sys/fs/cgroup/tenant.slice".into(),
            tenants: 1,
            events: vec![EventCount {
                kind: "exec".into(),
                received: 5,
                dropped: 2,
            }],
            gaps: 2,
            bpf_stats: false,
            programs: vec![ProgramStats {
                name: "count_egress".into(),
                run_count: 9,
                run_time_ns: 900,
            }],
        };
        let text = render(&counters, &health);
        assert!(
            text.contains("rampart_tenant_tx_bytes_total{tenant=\"shop\"} 20\n"),
            "{text}"
        );
        assert!(text.contains("rampart_monitor_events_dropped_total{kind=\"exec\"} 2\n"));
        assert!(text.contains("rampart_monitor_sequence_gaps_total 2\n"));
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
                assert!(
                    line.rsplit(' ').next().unwrap().parse::<u64>().is_ok(),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
