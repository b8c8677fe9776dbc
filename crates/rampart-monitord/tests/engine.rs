//! The engine on the real kernel and real cgroups (root only): CPU held at the limit, totals across a reopen and
//! across a restarted slice.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Tenant, Tree};
use rampart_interfaces::monitor::ALERT_CPU;
use rampart_monitord::engine::Engine;
use rampart_monitord::settings::{MonitorFragment, Settings};

#[test]
fn role_entry() {
    if let Some(role) = common::role() {
        common::role_main(&role);
    }
}

fn settings(tree: &Tree, db: &std::path::Path, window_secs: u64) -> Settings {
    Settings::try_from(MonitorFragment {
        database: Some(db.to_owned()),
        cgroup: Some(tree.parent.clone()),
        cpu_sample_secs: Some(1),
        cpu_window_secs: Some(window_secs),
        ..MonitorFragment::default()
    })
    .unwrap()
}

#[test]
fn a_busy_loop_at_the_limit_raises_one_cpu_alert_for_that_tenant() {
    if !rampart_common::testing::require_root(
        "a_busy_loop_at_the_limit_raises_one_cpu_alert_for_that_tenant",
    ) {
        return;
    }
    let tree = Tree::new();
    let (busy, idle) = (tree.tenant("busy"), tree.tenant("idle"));
    let db = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(settings(&tree, &db.path().join("m.db"), 3)).unwrap();
    engine.scan().unwrap();
    // This host's cgroup v2 has no cpu controller, so there is no cpu.max to read: the plan's limit (as
    // rampart-tenantd reports it) is what the use is measured against. Half a CPU; the loop takes a whole one.
    engine.set_plan_limits(HashMap::from([
        ("busy".to_owned(), 50),
        ("idle".to_owned(), 50),
    ]));
    let spinner = Tenant::start(&busy, &["spin", "8"]);
    let _ = &idle;
    let start = Instant::now();
    let mut alerts = Vec::new();
    while start.elapsed() < Duration::from_secs(8) {
        let usec = u64::try_from(start.elapsed().as_micros()).unwrap();
        alerts.extend(engine.cpu_tick(usec, 0));
        std::thread::sleep(Duration::from_millis(500));
    }
    spinner.finish();
    println!("{alerts:#?}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0].tenant.as_str(), alerts[0].kind.as_str()),
        ("busy", ALERT_CPU)
    );
    let counters = engine.counters().unwrap();
    assert_eq!(
        counters
            .iter()
            .find(|c| c.tenant == "busy")
            .unwrap()
            .cpu_limit_percent,
        50
    );
}

#[test]
fn totals_survive_a_reopen_and_a_restarted_slice() {
    if !rampart_common::testing::require_root("totals_survive_a_reopen_and_a_restarted_slice") {
        return;
    }
    let tree = Tree::new();
    let dir = tree.tenant("shop");
    let db = tempfile::tempdir().unwrap();
    let db = db.path().join("m.db");
    let send = |bytes: u64| {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let serve = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            std::io::copy(&mut s.by_ref().take(u64::MAX), &mut std::io::sink()).unwrap();
        });
        let mut t = Tenant::start(&dir, &["send", &port.to_string(), &bytes.to_string()]);
        t.line("received");
        t.finish();
        serve.join().unwrap();
    };
    let tx = |engine: &Engine| {
        engine
            .totals()
            .unwrap()
            .get("shop")
            .copied()
            .unwrap_or_default()
            .tx_bytes
    };

    let mut engine = Engine::open(settings(&tree, &db, 600)).unwrap();
    engine.scan().unwrap();
    send(500_000);
    let first = tx(&engine);
    assert!(first > 500_000, "{first}");
    engine.checkpoint(1).unwrap();
    drop(engine);

    // A new process: the kernel counts from zero again, the saved base carries the total on.
    let mut engine = Engine::open(settings(&tree, &db, 600)).unwrap();
    engine.scan().unwrap();
    assert_eq!(tx(&engine), first, "nothing lost or doubled by the restart");
    send(300_000);
    let second = tx(&engine);
    assert!(second > first + 300_000, "{second}");

    // The slice stops and starts again (suspend, resume): a new cgroup id; what the old one counted stays.
    tree.remove_tenant("shop");
    let dir = tree.tenant("shop");
    let changes = engine.scan().unwrap();
    assert_eq!(
        (changes.removed.as_slice(), changes.added.as_slice()),
        (
            ["shop".to_owned()].as_slice(),
            ["shop".to_owned()].as_slice()
        )
    );
    assert_eq!(tx(&engine), second);
    let _ = dir;
    send(100_000);
    assert!(tx(&engine) > second + 100_000);
}
