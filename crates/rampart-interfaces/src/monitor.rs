//! `org.rampart.Monitor1`: per-tenant network and process monitoring, served by rampart-monitord.
//!
//! eBPF programs attached at `tenant.slice` count, in the kernel and per CPU, every tenant's bytes and packets in
//! and out, outbound connections by destination port, sockets listening on new ports and executions. Events leave
//! the kernel only for things seen for the first time (a port, a binary); counters never depend on events. Every
//! event the kernel could not queue is counted per type ([`Health::dropped`]) and every gap the reader saw in the
//! per-CPU sequence numbers too ([`Health::gaps`]): a loss is reported, never silent.
//!
//! Alerts — a new listening port, an execution from a world-writable or tmpfs place or of a deleted file, a first
//! connection to a watched port (25, 3333, 4444…), CPU held at the tenant's limit for the configured time — go to the
//! audit log (actor `service:rampart-monitord`, action `monitor.alert`), the journal (with
//! [`ALERT_MESSAGE_ID`]) and the [`Monitor::alert_raised`] signal (`AlertRaised`).
//!
//! Enforcement per tenant (deny outbound ports, listen only on allowed ports) is off by default; changing it takes
//! the caller's session token and goes through authorize → audit → act (permission `monitor.enforce`).

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Monitor1";
pub const OBJECT_PATH: &str = "/org/rampart/Monitor1";
pub const INTERFACE: &str = "org.rampart.Monitor1";

/// `MESSAGE_ID` of every alert in the journal (`journalctl MESSAGE_ID=...`).
pub const ALERT_MESSAGE_ID: &str = "5d1e3c7a9b2f4e08a6c4b1d2e3f40a17";

/// [`Alert::kind`] values.
pub const ALERT_LISTEN: &str = "listen";
pub const ALERT_EXEC: &str = "exec";
pub const ALERT_OUTBOUND: &str = "outbound";
pub const ALERT_CPU: &str = "cpu";

/// One tenant's counters since monitoring began (kept across daemon restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TenantCounters {
    pub tenant: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    /// Outbound connection attempts (TCP connect, UDP sends to a new destination port are counted per call).
    pub connects: u64,
    pub execs: u64,
    /// Executions flagged (world-writable or tmpfs place, deleted file).
    pub flagged_execs: u64,
    /// CPU use over the last sample, in percent of one CPU.
    pub cpu_percent: u32,
    /// The tenant's CPU limit in percent of one CPU (0: none known).
    pub cpu_limit_percent: u32,
}

/// How often a tenant connected to one destination port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct PortCount {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
    pub count: u64,
}

/// A port a tenant listens on (TCP `listen`, UDP `bind`), as first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ListenPort {
    pub protocol: String,
    pub port: u16,
    pub first_seen: u64,
}

/// `Tenant(name)`: one tenant's counters with the per-port detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TenantDetail {
    pub counters: TenantCounters,
    pub outbound: Vec<PortCount>,
    pub listening: Vec<ListenPort>,
}

/// Something worth a person's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Alert {
    pub id: u64,
    pub time: u64,
    pub tenant: String,
    /// One of `ALERT_*`.
    pub kind: String,
    /// In words, e.g. `listening on tcp/9200 (first time)`.
    pub message: String,
    /// The process, when there is one (0 otherwise).
    pub pid: u32,
    /// The binary (exec alerts) or the process name.
    pub program: String,
    /// The port (listen and outbound alerts; 0 otherwise).
    pub port: u16,
}

/// Per event type: events read, and events lost in the kernel (ring buffer full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct EventCount {
    /// `exec`, `connect`, `listen`.
    pub kind: String,
    pub received: u64,
    pub dropped: u64,
}

/// One attached BPF program's cost, from the kernel's BPF statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ProgramStats {
    pub name: String,
    /// Runs and total run time since the program was loaded (both 0 while kernel BPF stats are off).
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// `Health()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Health {
    /// The programs are loaded and attached.
    pub attached: bool,
    /// The cgroup the programs are attached at, e.g. `/sys/fs/cgroup/tenant.slice`.
    pub cgroup: String,
    pub tenants: u32,
    pub events: Vec<EventCount>,
    /// Sequence-number gaps the reader saw (should equal the sum of `dropped`).
    pub gaps: u64,
    /// Whether the kernel counts BPF run time (`kernel.bpf_stats_enabled`).
    pub bpf_stats: bool,
    pub programs: Vec<ProgramStats>,
}

/// Enforcement for one tenant. Empty lists and `false` mean none (the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Enforcement {
    pub tenant: String,
    /// Outbound connections to these ports are refused (TCP and UDP).
    pub deny_outbound: Vec<u16>,
    /// When true, the tenant may listen (or bind) only on `allow_listen`.
    pub restrict_listen: bool,
    pub allow_listen: Vec<u16>,
}

#[zbus::proxy(
    interface = "org.rampart.Monitor1",
    default_service = "org.rampart.Monitor1",
    default_path = "/org/rampart/Monitor1",
    gen_blocking = false
)]
pub trait Monitor {
    /// Every tenant's counters, by name.
    fn counters(&self) -> zbus::Result<Vec<TenantCounters>>;

    /// One tenant's counters, outbound ports and listening ports.
    fn tenant(&self, name: &str) -> zbus::Result<TenantDetail>;

    /// Alerts newer than `since_id` (0: the most recent), oldest first, at most `limit` (0: 100).
    fn alerts(&self, since_id: u64, limit: u32) -> zbus::Result<Vec<Alert>>;

    /// Programs, event losses and their cost.
    fn health(&self) -> zbus::Result<Health>;

    /// The counters, losses and program costs in the Prometheus text format (0.0.4).
    fn prometheus(&self) -> zbus::Result<String>;

    /// The enforcement settings of a tenant.
    fn enforcement(&self, name: &str) -> zbus::Result<Enforcement>;

    /// Sets a tenant's enforcement (permission `monitor.enforce`); applies in the kernel at once.
    fn set_enforcement(&self, token: &str, settings: &Enforcement) -> zbus::Result<()>;

    /// An alert was raised.
    #[zbus(signal)]
    fn alert_raised(&self, alert: Alert) -> zbus::Result<()>;
}
