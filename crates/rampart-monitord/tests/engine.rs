//! The engine on the real kernel and real cgroups (root only): CPU held at the limit, totals across a reopen and
//! across a restarted slice, a purged tenant's state forgotten.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{free_port, reader, Tenant, Tree};
use rampart_interfaces::monitor::{Enforcement, ALERT_CPU, ALERT_LISTEN};
use rampart_monitord::engine::Engine;
use rampart_monitord::settings::{MonitorFragment, Settings};
use rampart_monitord::wire::EV_LISTEN;

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

#[test]
fn a_new_tenant_of_a_purged_ones_name_inherits_nothing() {
    if !rampart_common::testing::require_root("a_new_tenant_of_a_purged_ones_name_inherits_nothing")
    {
        return;
    }
    let tree = Tree::new();
    let shop = tree.tenant("shop");
    let _blog = tree.tenant("blog");
    let _bench = tree.tenant("bench"); // a slice rampart-tenantd never named
    let db = tempfile::tempdir().unwrap();
    let db = db.path().join("m.db");
    let mut engine = Engine::open(settings(&tree, &db, 600)).unwrap();
    let (_reader, events) = reader(engine.programs());
    engine.scan().unwrap();
    let known = |shop_created: Option<u64>| {
        let mut k = vec![("blog".to_owned(), 100)];
        k.extend(shop_created.map(|c| ("shop".to_owned(), c)));
        k
    };
    assert!(engine.reconcile(&known(Some(100))).unwrap().is_empty());
    // bench is never named by rampart-tenantd: its saved totals are never forgotten (reconciles below return
    // only shop).

    // The first shop listens (one alert), is put under enforcement, and its counts are saved.
    let port = free_port();
    let listen = |dir: &std::path::Path, engine: &mut Engine| {
        let mut t = Tenant::start(dir, &["listen", &port.to_string()]);
        t.line("listening ok");
        let got = events.matching(|e| e.kind == EV_LISTEN && e.port == port);
        drop(t);
        let mut raised = 0;
        for e in &got {
            if let Some(a) = engine.handle(e, 1).unwrap() {
                let a = engine.store_alert(a).unwrap();
                raised += usize::from(a.kind == ALERT_LISTEN && a.tenant == "shop");
            }
        }
        raised
    };
    assert_eq!(listen(&shop, &mut engine), 1);
    engine
        .set_enforcement(&Enforcement {
            tenant: "shop".into(),
            deny_outbound: vec![25],
            restrict_listen: false,
            allow_listen: vec![],
        })
        .unwrap();
    engine.checkpoint(1).unwrap();
    let blog_before = engine.detail("blog").unwrap().counters;
    assert_eq!(engine.detail("shop").unwrap().listening.len(), 1);

    // Purged, and a new tenant of the same name made before monitord heard: a new slice, a new creation time.
    tree.remove_tenant("shop");
    let shop = tree.tenant("shop");
    engine.scan().unwrap();
    assert_eq!(engine.reconcile(&known(Some(200))).unwrap(), ["shop"]);
    engine.scan().unwrap();
    let fresh = engine.detail("shop").unwrap();
    assert!(
        fresh.listening.is_empty() && fresh.outbound.is_empty(),
        "{fresh:?}"
    );
    assert_eq!(fresh.counters.rx_packets + fresh.counters.tx_packets, 0);
    assert!(engine.enforcement("shop").unwrap().deny_outbound.is_empty());
    assert_eq!(
        listen(&shop, &mut engine),
        1,
        "the same port is a first-seen listen for the new tenant"
    );
    assert_eq!(engine.detail("blog").unwrap().counters, blog_before);
    assert!(
        engine.reconcile(&known(Some(200))).unwrap().is_empty(),
        "recorded once"
    );

    // Gone for good while the daemon was down: forgotten at the next start's first reconcile.
    engine.checkpoint(2).unwrap();
    drop(engine);
    let mut engine = Engine::open(settings(&tree, &db, 600)).unwrap();
    engine.scan().unwrap();
    assert_eq!(engine.reconcile(&known(None)).unwrap(), ["shop"]);
    let alerts = engine.alerts(0, 100).unwrap();
    assert_eq!(
        alerts.iter().filter(|a| a.tenant == "shop").count(),
        2,
        "the alerts stay as history"
    );
}
