//! `make bench` for rampart-auditd. Prints figures and ratios against baselines measured in the same run:
//! - durable appends/s in-process, group commit vs one fsync per record (the baseline);
//! - durable appends/s through a private system bus and the real daemon binary;
//! - time to verify a 1,000,000-record chain.
//!
//! Run: `cargo bench -p rampart-auditd` (release build). Targets: >= 20,000 records/s batched; verify 1 M <= 3 s.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use rampart_auditd::store::{self, Pending, Store};
use rampart_auditd::writer::Writer;
use rampart_common::testing::{audit_daemon, PrivateBus};
use rampart_interfaces::audit::{AuditProxy, NewRecord};

fn pending(i: u64) -> Pending {
    Pending {
        time_us: 1_700_000_000_000_000 + i as i64,
        actor: "root@console".into(),
        peer: "uid=0 pid=1".into(),
        sender: "uid=0 pid=1".into(),
        action: "bench.append".into(),
        target: format!("item/{i}"),
        outcome: "allowed".into(),
        details: format!("{{\"i\":{i},\"note\":\"a typical record with a few fields\"}}"),
    }
}

async fn in_process(max_batch: usize, producers: u64, per_producer: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("audit.db")).unwrap();
    let (writer, thread) = Writer::spawn(store, max_batch, false).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let w = writer.clone();
            tokio::spawn(async move {
                for i in 0..per_producer {
                    w.append(pending(p * per_producer + i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    writer.stop().await;
    thread.join().unwrap();
    (producers * per_producer) as f64 / secs
}

/// Durable records/s through the bus, and (the ceiling) empty `Peer.Ping` round trips/s to the same daemon
/// with the same concurrency.
async fn over_dbus(connections: usize, callers_per_conn: usize, per_caller: usize) -> (f64, f64) {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _daemon = audit_daemon(&bus, state.path()).await;
    let mut pings = Vec::new();
    let start = Instant::now();
    for _ in 0..connections {
        let conn = bus.connect().await;
        for _ in 0..callers_per_conn {
            let conn = conn.clone();
            pings.push(tokio::spawn(async move {
                let peer = zbus::fdo::PeerProxy::builder(&conn)
                    .destination(rampart_interfaces::audit::BUS_NAME)
                    .unwrap()
                    .path(rampart_interfaces::audit::OBJECT_PATH)
                    .unwrap()
                    .build()
                    .await
                    .unwrap();
                for _ in 0..per_caller {
                    peer.ping().await.unwrap();
                }
            }));
        }
    }
    for t in pings {
        t.await.unwrap();
    }
    let ping_rate =
        (connections * callers_per_conn * per_caller) as f64 / start.elapsed().as_secs_f64();
    let mut tasks = Vec::new();
    let mut proxies = Vec::new();
    for _ in 0..connections {
        proxies.push(AuditProxy::new(&bus.connect().await).await.unwrap());
    }
    let start = Instant::now();
    for proxy in &proxies {
        for c in 0..callers_per_conn {
            let proxy = proxy.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_caller {
                    let rec = NewRecord {
                        actor: "root@console".into(),
                        peer: String::new(),
                        action: "bench.dbus".into(),
                        target: format!("item/{c}/{i}"),
                        outcome: "allowed".into(),
                        details: "{\"note\":\"a typical record\"}".into(),
                    };
                    proxy.record(&rec).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (connections * callers_per_conn * per_caller) as f64 / start.elapsed().as_secs_f64();
    (rate, ping_rate)
}

fn verify_million() -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut store = Store::open(&path).unwrap();
    let chunk: u64 = 20_000;
    for c in 0..(1_000_000 / chunk) {
        let batch: Vec<Pending> = (0..chunk).map(|i| pending(c * chunk + i)).collect();
        store.append_batch(&batch).unwrap();
    }
    drop(store);
    let conn = rampart_common::db::open_read_only(&path).unwrap();
    let start = Instant::now();
    let v = store::verify(&conn).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(v.ok);
    (secs, v.count)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (and `cargo test --benches`) must not run the benchmark
    }
    println!(
        "# rampart-auditd benchmark (cargo bench -p rampart-auditd), {} cores",
        num_cpus()
    );
    let single = in_process(1, 1, 2_000).await;
    println!("baseline: one record per fsync, 1 producer        {single:>10.0} records/s");
    let batched = in_process(1024, 64, 3_000).await;
    println!(
        "in-process group commit, 64 producers            {batched:>10.0} records/s  ({:.1}x baseline; target >= 20000)",
        batched / single
    );
    let (dbus, ping) = over_dbus(4, 100, 100).await;
    println!("bus ceiling: empty Peer.Ping round trips, same load {ping:>8.0} calls/s");
    println!(
        "through D-Bus, 4 connections x 100 callers       {dbus:>10.0} records/s  ({:.1}x baseline, {:.0}% of the bus ceiling)",
        dbus / single,
        100.0 * dbus / ping
    );
    let (secs, n) = verify_million();
    println!("verify a {n}-record chain                   {secs:>10.2} s  (target <= 3 s)");
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
