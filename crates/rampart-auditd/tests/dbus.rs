//! rampart-auditd over a private system bus: the real binary, real SQLite, real D-Bus.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests start processes directly and may panic

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rampart_common::guard::{Action, Guard, ROOT_CONSOLE};
use rampart_common::testing::{audit_daemon, workspace_bin, PrivateBus};
use rampart_interfaces::audit::{AuditProxy, NewRecord};
use serde_json::json;

fn rec(action: &str, target: &str, details: &str) -> NewRecord {
    NewRecord {
        actor: ROOT_CONSOLE.into(),
        peer: String::new(),
        action: action.into(),
        target: target.into(),
        outcome: "allowed".into(),
        details: details.into(),
    }
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => format!("not a method error: {other}"),
    }
}

#[tokio::test]
async fn record_query_verify_round_trip() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _d = audit_daemon(&bus, state.path()).await;
    let conn = bus.connect().await;
    let audit = AuditProxy::new(&conn).await.unwrap();

    let a = audit
        .record(&rec("firewall.open", "tcp/8080", r#"{"z":1,"a":[2]}"#))
        .await
        .unwrap();
    let b = audit
        .record(&rec("firewall.close", "tcp/8080", ""))
        .await
        .unwrap();
    let c = audit
        .record(&rec("ssh.key_add", "alice", "{}"))
        .await
        .unwrap();
    assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));

    let page = audit
        .query(filters(&[("action", "firewall.*")]), 0, 0, false)
        .await
        .unwrap();
    let got: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(got, vec![1, 2]);
    let first = &page.records[0];
    assert_eq!(
        first.details, r#"{"a":[2],"z":1}"#,
        "details stored canonical"
    );
    let me = nix::unistd::getuid().as_raw();
    assert!(
        first.sender.starts_with(&format!("uid={me} ")),
        "sender from bus credentials: {}",
        first.sender
    );
    assert_eq!(
        first.peer, first.sender,
        "empty peer is filled with the bus caller"
    );

    let newest = audit.query(HashMap::new(), 0, 2, true).await.unwrap();
    assert_eq!(
        newest.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let rest = audit
        .query(HashMap::new(), newest.next_cursor, 2, true)
        .await
        .unwrap();
    assert_eq!(
        (rest.records.len(), rest.records[0].seq, rest.next_cursor),
        (1, 1, 0)
    );

    let v = audit.verify().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.count, v.head_hash.as_str()), (3, c.hash.as_str()));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_loses_nothing() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _d = audit_daemon(&bus, state.path()).await;
    let conn = bus.connect().await;
    let audit = AuditProxy::new(&conn).await.unwrap();
    audit
        .record(&rec("firewall.open", "tcp/1", "{}"))
        .await
        .unwrap();

    let bad_details = audit
        .record(&rec("firewall.open", "tcp/2", "{\"port\": "))
        .await
        .unwrap_err();
    assert_eq!(
        error_name(&bad_details),
        "org.rampart.Error.InvalidArgument"
    );
    assert!(
        bad_details.to_string().contains("not valid JSON"),
        "{bad_details}"
    );
    let mut forged = rec("firewall.open", "tcp/3", "{}");
    forged.actor = "root@console\n#42 admin firewall.close".into();
    assert!(audit
        .record(&forged)
        .await
        .unwrap_err()
        .to_string()
        .contains("control characters"));

    let unknown = audit
        .query(filters(&[("colour", "red")]), 0, 0, false)
        .await
        .unwrap_err();
    assert_eq!(error_name(&unknown), "org.rampart.Error.InvalidArgument");
    assert!(
        unknown.to_string().contains("known filters: actor"),
        "{unknown}"
    );
    assert!(audit.query(HashMap::new(), 0, 5000, false).await.is_err());

    let v = audit.verify().await.unwrap();
    assert!(v.ok && v.count == 1, "refused input changed nothing: {v:?}");
}

#[tokio::test]
async fn concurrent_callers_get_distinct_durable_records() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = audit_daemon(&bus, state.path()).await;
    let conn = bus.connect().await;
    // The system bus allows 128 pending calls per connection: spread 300 callers over 3 connections.
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(AuditProxy::new(&bus.connect().await).await.unwrap());
    }
    let calls = (0..300).map(|i| {
        let audit = proxies[i % 3].clone();
        async move {
            audit
                .record(&rec("test.load", &format!("n/{i}"), "{}"))
                .await
                .unwrap()
                .seq
        }
    });
    let mut seqs = futures_join_all(calls).await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());

    // A clean stop and a restart keep every acknowledged record and continue the chain.
    assert!(d.stop().success(), "SIGTERM is a clean exit");
    drop(d);
    let _d = audit_daemon(&bus, state.path()).await;
    let audit = AuditProxy::new(&conn).await.unwrap();
    assert_eq!(
        audit
            .record(&rec("test.load", "after", "{}"))
            .await
            .unwrap()
            .seq,
        301
    );
    let v = audit.verify().await.unwrap();
    assert!(v.ok && v.count == 301, "{v:?}");
}

async fn futures_join_all<F: std::future::Future<Output = u64> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<u64> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn tampered_database_is_named_by_verify() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = audit_daemon(&bus, state.path()).await;
    let conn = bus.connect().await;
    let audit = AuditProxy::new(&conn).await.unwrap();
    for i in 0..5 {
        audit
            .record(&rec("firewall.open", &format!("tcp/{i}"), "{}"))
            .await
            .unwrap();
    }
    d.stop();
    drop(d);
    let db = rusqlite::Connection::open(state.path().join("audit.db")).unwrap();
    db.execute_batch("DROP TRIGGER records_append_only_update; UPDATE records SET target = 'tcp/22' WHERE seq = 3;")
        .unwrap();
    drop(db);
    let _d = audit_daemon(&bus, state.path()).await;
    let v = AuditProxy::new(&conn)
        .await
        .unwrap()
        .verify()
        .await
        .unwrap();
    assert_eq!((v.ok, v.broken_seq, v.count), (false, 3, 2), "{v:?}");
    assert!(v.problem.contains("record 3 was altered"), "{}", v.problem);
}

#[tokio::test]
async fn corrupted_database_is_refused_and_left_untouched() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    {
        let _d = audit_daemon(&bus, state.path()).await;
        let conn = bus.connect().await;
        AuditProxy::new(&conn)
            .await
            .unwrap()
            .record(&rec("firewall.open", "tcp/1", "{}"))
            .await
            .unwrap();
    }
    let path = state.path().join("audit.db");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(100).take(4000) {
        *b ^= 0xA5; // smash the page headers after the file header
    }
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(state.path().join("audit.db-wal"));
    let out = std::process::Command::new(workspace_bin("rampart-auditd"))
        .args([
            "--config-root",
            state.path().join("config").to_str().unwrap(),
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "auditd must refuse a damaged database"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged") && stderr.contains("audit.db"),
        "clear error naming the file: {stderr}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the damaged file is left exactly as it was"
    );
}

/// A mutating method built on the shared guard, to prove the authorize → audit → act order against real auditd.
struct Demo {
    guard: Guard,
    acted: Arc<AtomicU32>,
    permission: &'static str,
}

#[zbus::interface(name = "org.rampart.Demo1")]
impl Demo {
    async fn set(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
        token: String,
        value: u32,
    ) -> Result<u32, rampart_interfaces::Error> {
        let action = Action {
            permission: self.permission,
            target: "value",
            details: json!({ "value": value }),
        };
        let acted = self.acted.clone();
        self.guard
            .run(&header, &token, action, |_principal| async move {
                if value == 13 {
                    return Err(rampart_interfaces::Error::Failed("13 is unlucky".into()));
                }
                acted.store(value, Ordering::SeqCst);
                Ok(value)
            })
            .await
    }
}

#[zbus::proxy(
    interface = "org.rampart.Demo1",
    default_service = "org.rampart.Demo1",
    default_path = "/demo"
)]
trait Demo {
    fn set(&self, token: &str, value: u32) -> zbus::Result<u32>;
}

async fn demo_service(
    bus: &PrivateBus,
    name: &str,
    console_uid: u32,
) -> (zbus::Connection, Arc<AtomicU32>) {
    let guard_conn = bus.connect().await;
    let guard = Guard::new(&guard_conn)
        .await
        .unwrap()
        .with_console_uid(console_uid);
    demo_with(bus, name, guard, "demo.set").await
}

async fn demo_with(
    bus: &PrivateBus,
    name: &str,
    guard: Guard,
    permission: &'static str,
) -> (zbus::Connection, Arc<AtomicU32>) {
    let acted = Arc::new(AtomicU32::new(0));
    let service = Demo {
        guard,
        acted: acted.clone(),
        permission,
    };
    let conn = rampart_common::bus::serve_on(bus.builder(), name, "/demo", service)
        .await
        .unwrap();
    (conn, acted)
}

#[tokio::test]
async fn guard_authorizes_then_audits_then_acts() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _d = audit_daemon(&bus, state.path()).await;
    let me = nix::unistd::getuid().as_raw();
    let (_svc, acted) = demo_service(&bus, "org.rampart.Demo1", me).await;
    let client = bus.connect().await;
    let demo = DemoProxy::new(&client).await.unwrap();
    let audit = AuditProxy::new(&client).await.unwrap();

    assert_eq!(demo.set("", 7).await.unwrap(), 7);
    assert_eq!(acted.load(Ordering::SeqCst), 7);
    let err = demo.set("", 13).await.unwrap_err();
    assert_eq!(error_name(&err), "org.rampart.Error.Failed");
    let err = demo.set("forged-token", 9).await.unwrap_err();
    assert_eq!(error_name(&err), "org.rampart.Error.AccessDenied");
    assert_eq!(
        acted.load(Ordering::SeqCst),
        7,
        "a denied call does not act"
    );

    let page = audit
        .query(filters(&[("action", "demo.set")]), 0, 0, false)
        .await
        .unwrap();
    let story: Vec<(String, String, String)> = page
        .records
        .iter()
        .map(|r| (r.actor.clone(), r.outcome.clone(), r.details.clone()))
        .collect();
    assert_eq!(
        story[0],
        (
            ROOT_CONSOLE.into(),
            "allowed".into(),
            r#"{"value":7}"#.into()
        )
    );
    assert_eq!(
        story[1].1, "allowed",
        "the attempt is audited before acting"
    );
    assert_eq!(
        story[2],
        (
            ROOT_CONSOLE.into(),
            "failed".into(),
            r#"{"error":"13 is unlucky","value":13}"#.into()
        )
    );
    assert_eq!(story[3].0, "session");
    assert_eq!(story[3].1, "denied");
    assert_eq!(story.len(), 4);
}

#[tokio::test]
async fn guard_denies_non_console_callers_and_refuses_to_act_without_audit() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = audit_daemon(&bus, state.path()).await;
    let me = nix::unistd::getuid().as_raw();
    let (_svc, acted) = demo_service(&bus, "org.rampart.Demo1", me.wrapping_add(1)).await;
    let client = bus.connect().await;
    let demo = DemoProxy::new(&client).await.unwrap();
    let err = demo.set("", 5).await.unwrap_err();
    assert_eq!(error_name(&err), "org.rampart.Error.AccessDenied");
    assert!(
        err.to_string().contains("only root on the console"),
        "{err}"
    );
    let page = AuditProxy::new(&client)
        .await
        .unwrap()
        .query(HashMap::new(), 0, 0, false)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].outcome, "denied");

    // With the audit log gone, an authorized call must not act.
    d.stop();
    let (_svc2, acted2) = demo_service(&bus, "org.rampart.Demo2", me).await;
    let demo2 = zbus::Proxy::new(&client, "org.rampart.Demo2", "/demo", "org.rampart.Demo1")
        .await
        .unwrap();
    let err: zbus::Error = demo2
        .call::<_, _, u32>("Set", &("", 5u32))
        .await
        .unwrap_err();
    assert_eq!(error_name(&err), "org.rampart.Error.Failed");
    assert!(err.to_string().contains("nothing was done"), "{err}");
    assert_eq!(
        (acted.load(Ordering::SeqCst), acted2.load(Ordering::SeqCst)),
        (0, 0)
    );
}

#[tokio::test]
async fn guard_lets_a_service_do_only_what_it_holds() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _d = audit_daemon(&bus, state.path()).await;
    let me = nix::unistd::getuid().as_raw();
    let guard_for = |conn: zbus::Connection| async move {
        Guard::new(&conn)
            .await
            .unwrap()
            .with_console_uid(me.wrapping_add(1))
            .with_service_uid("service:rampart-guardd", me)
    };
    let (_ban, banned) = demo_with(
        &bus,
        "org.rampart.Demo1",
        guard_for(bus.connect().await).await,
        "firewall.ban",
    )
    .await;
    let client = bus.connect().await;
    let demo = DemoProxy::new(&client).await.unwrap();
    assert_eq!(demo.set("", 3).await.unwrap(), 3);
    assert_eq!(banned.load(Ordering::SeqCst), 3);

    let (_open, opened) = demo_with(
        &bus,
        "org.rampart.Demo2",
        guard_for(bus.connect().await).await,
        "firewall.open",
    )
    .await;
    let other = DemoProxy::builder(&client)
        .destination("org.rampart.Demo2")
        .unwrap()
        .build()
        .await
        .unwrap();
    let err = other.set("", 4).await.unwrap_err();
    assert_eq!(error_name(&err), "org.rampart.Error.AccessDenied");
    assert!(err.to_string().contains("holds only firewall.ban"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0);

    let page = AuditProxy::new(&client)
        .await
        .unwrap()
        .query(HashMap::new(), 0, 0, false)
        .await
        .unwrap();
    let story: Vec<(&str, &str, &str)> = page
        .records
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        story[0],
        ("service:rampart-guardd", "firewall.ban", "allowed")
    );
    assert_eq!(story[1].1, "firewall.open");
    assert_eq!(story[1].2, "denied");
    assert_eq!(story.len(), 2);
}
