//! The rampart-monitord binary on a private bus with the real rampart-auditd, its programs in the real kernel at a
//! test cgroup tree (root only): alerts reach the database, the bus signal and the audit log; enforcement is
//! guarded and audited; counters, first-seen ports and enforcement survive a restart.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use common::{Tenant, Tree};
use futures_lite::StreamExt;
use rampart_common::testing::{audit_daemon, require_root, Daemon, PrivateBus};
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::monitor::{
    Alert, Enforcement, MonitorProxy, ALERT_EXEC, ALERT_LISTEN, ALERT_OUTBOUND, BUS_NAME,
};

#[test]
fn role_entry() {
    if let Some(role) = common::role() {
        common::role_main(&role);
    }
}

async fn start(bus: &PrivateBus, config: &std::path::Path) -> Daemon {
    Daemon::spawn(
        bus,
        "rampart-monitord",
        &["--config-root", config.to_str().unwrap()],
        BUS_NAME,
    )
    .await
}

/// Runs a role in `dir` on a blocking thread and returns the value after `prefix` in its output.
async fn run(dir: &std::path::Path, role: &[&str], prefix: &str) -> String {
    let (dir, role, prefix) = (
        dir.to_owned(),
        role.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        prefix.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = role.iter().map(String::as_str).collect();
        let mut t = Tenant::start(&dir, &args);
        let out = t.line(&prefix);
        t.finish();
        out
    })
    .await
    .unwrap()
}

/// Sends `bytes` from the tenant to a server on loopback.
async fn send(dir: &std::path::Path, bytes: u64) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        std::io::copy(&mut s.by_ref(), &mut std::io::sink()).unwrap();
    });
    run(
        dir,
        &["send", &port.to_string(), &bytes.to_string()],
        "received",
    )
    .await;
    serve.join().unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_stored_signalled_and_audited_and_state_survives_a_restart() {
    if !require_root("alerts_are_stored_signalled_and_audited_and_state_survives_a_restart") {
        return;
    }
    let tree = Tree::new();
    let (alpha, beta) = (tree.tenant("alpha"), tree.tenant("beta"));
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("config");
    std::fs::create_dir_all(config.join("monitord.d")).unwrap();
    std::fs::write(
        config.join("monitord.d/50-test.toml"),
        format!(
            "database = {:?}\ncgroup = {:?}\nscan_interval_secs = 1\ncheckpoint_secs = 1\n",
            state.path().join("monitor.db"),
            tree.parent
        ),
    )
    .unwrap();
    let bus = PrivateBus::start();
    let _audit = audit_daemon(&bus, state.path()).await;
    let mut daemon = start(&bus, &config).await;
    let conn = bus.connect().await;
    let monitor = MonitorProxy::new(&conn).await.unwrap();
    let mut signals = monitor.receive_alert_raised().await.unwrap();
    wait_until("both tenants", async || {
        (monitor.health().await.unwrap().tenants == 2).then_some(())
    })
    .await;

    // Listening, a watched and an ordinary outbound port, a binary from tmpfs; then beta listens too.
    let (port_a, port_b) = (free_port(), free_port());
    let mut listener = Tenant::start(&alpha, &["listen", &port_a.to_string()]);
    assert_eq!(listener.line("listening"), "ok");
    assert_eq!(run(&alpha, &["connect", "3333"], "connect").await, "111");
    assert_eq!(
        run(&alpha, &["connect", &free_port().to_string()], "connect").await,
        "111"
    );
    let shm = std::path::PathBuf::from(format!(
        "/dev/shm/rampart-monitord-test-{}",
        std::process::id()
    ));
    std::fs::copy("/bin/true", &shm).unwrap();
    assert_eq!(
        run(&alpha, &["exec", shm.to_str().unwrap()], "exec").await,
        "0"
    );
    std::fs::remove_file(&shm).unwrap();
    let mut other = Tenant::start(&beta, &["listen", &port_b.to_string()]);
    assert_eq!(other.line("listening"), "ok");

    let expected = [
        ("alpha", ALERT_LISTEN, port_a),
        ("alpha", ALERT_OUTBOUND, 3333),
        ("alpha", ALERT_EXEC, 0),
        ("beta", ALERT_LISTEN, port_b),
    ];
    let alerts: Vec<Alert> = wait_until("four alerts", async || {
        let a = monitor.alerts(0, 0).await.unwrap();
        (a.len() >= expected.len()).then_some(a)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts_now = monitor.alerts(0, 0).await.unwrap();
    assert_eq!(
        alerts_now.len(),
        expected.len(),
        "no other alert: {alerts_now:#?}"
    );
    for (a, (tenant, kind, port)) in alerts.iter().zip(expected) {
        assert_eq!(
            (a.tenant.as_str(), a.kind.as_str()),
            (tenant, kind),
            "{a:?}"
        );
        if kind != ALERT_EXEC {
            assert_eq!(a.port, port, "{a:?}");
        }
    }
    assert!(alerts[2].message.contains("on a tmpfs"), "{:?}", alerts[2]);
    for a in &alerts {
        let signal = tokio::time::timeout(Duration::from_secs(5), signals.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &signal.args().unwrap().alert,
            a,
            "the signal carries the stored alert"
        );
    }
    let audit = AuditProxy::new(&conn).await.unwrap();
    let audited = wait_until("the alerts in the audit log", async || {
        let filters = HashMap::from([("action".to_owned(), "monitor.alert".to_owned())]);
        let page = audit.query(filters, 0, 100, false).await.unwrap();
        (page.records.len() == expected.len()).then_some(page.records)
    })
    .await;
    for (r, a) in audited.iter().zip(&alerts) {
        assert_eq!(
            (r.actor.as_str(), r.target.as_str()),
            (
                "service:rampart-monitord",
                format!("tenant/{}", a.tenant).as_str()
            )
        );
        assert!(r.details.contains(&format!("\"alert\":{}", a.id)), "{r:?}");
    }

    // Counters and their export.
    send(&alpha, 200_000).await;
    let counters = monitor.counters().await.unwrap();
    let a = counters
        .iter()
        .find(|c| c.tenant == "alpha")
        .unwrap()
        .clone();
    assert!(
        a.tx_bytes > 200_000 && a.connects >= 3 && a.flagged_execs == 1,
        "{a:?}"
    );
    let text = monitor.prometheus().await.unwrap();
    assert!(
        text.contains(&format!(
            "rampart_tenant_tx_bytes_total{{tenant=\"alpha\"}} {}",
            a.tx_bytes
        )),
        "{text}"
    );
    let detail = monitor.tenant("alpha").await.unwrap();
    assert!(
        detail
            .outbound
            .iter()
            .any(|p| p.port == 3333 && p.count == 1),
        "{detail:?}"
    );
    assert!(
        detail.listening.iter().any(|p| p.port == port_a),
        "{detail:?}"
    );

    // Enforcement: validated first, then authorized and audited; a caller whose session cannot be vouched for is
    // refused, and the refusal is audited.
    let deny = Enforcement {
        tenant: "alpha".into(),
        deny_outbound: vec![3333],
        restrict_listen: false,
        allow_listen: vec![],
    };
    let bad = Enforcement {
        tenant: "Alpha!".into(),
        ..deny.clone()
    };
    let err = monitor.set_enforcement("", &bad).await.unwrap_err();
    assert!(err.to_string().contains("InvalidArgument"), "{err}");
    let err = monitor
        .set_enforcement("not-a-session", &deny)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    monitor.set_enforcement("", &deny).await.unwrap();
    assert_eq!(
        run(&alpha, &["connect", "3333"], "connect").await,
        "1",
        "EPERM"
    );
    assert_eq!(run(&beta, &["connect", "3333"], "connect").await, "111");
    let filters = HashMap::from([("action".to_owned(), "monitor.enforce".to_owned())]);
    let outcomes: Vec<String> = audit
        .query(filters, 0, 100, false)
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, ["denied", "allowed"]);

    // Restart: counters carry on exactly, first-seen ports stay seen, enforcement is applied again.
    listener.finish();
    other.finish();
    let before = monitor.counters().await.unwrap();
    // beta's connection to 3333 above was its first: one more alert, for beta.
    let alerts_before = monitor.alerts(0, 0).await.unwrap();
    assert_eq!(alerts_before.len(), expected.len() + 1);
    assert_eq!(
        (
            alerts_before[4].tenant.as_str(),
            alerts_before[4].kind.as_str()
        ),
        ("beta", ALERT_OUTBOUND)
    );
    assert!(daemon.stop().success());
    let _daemon = start(&bus, &config).await;
    let monitor = MonitorProxy::new(&conn).await.unwrap();
    wait_until("both tenants again", async || {
        (monitor.health().await.unwrap().tenants == 2).then_some(())
    })
    .await;
    let after = monitor.counters().await.unwrap();
    let bytes = |c: &[rampart_interfaces::monitor::TenantCounters]| {
        c.iter()
            .map(|c| {
                (
                    c.tenant.clone(),
                    c.rx_bytes,
                    c.tx_bytes,
                    c.connects,
                    c.execs,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bytes(&after), bytes(&before));
    assert_eq!(
        run(&alpha, &["connect", "3333"], "connect").await,
        "1",
        "still enforced"
    );
    let mut again = Tenant::start(&alpha, &["listen", &port_a.to_string()]);
    assert_eq!(again.line("listening"), "ok");
    tokio::time::sleep(Duration::from_secs(1)).await;
    again.finish();
    assert_eq!(
        monitor.alerts(0, 0).await.unwrap(),
        alerts_before,
        "no second first-seen alert"
    );
    let health = monitor.health().await.unwrap();
    assert_eq!(health.gaps, 0);
    assert!(health.events.iter().all(|e| e.dropped == 0), "{health:?}");
}
