//! rampartctl against the real rampart-auditd on a private system bus.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests run the binaries directly and may panic

use std::process::{Command, Output};

use rampart_common::testing::{audit_daemon, workspace_bin, PrivateBus};
use rampart_interfaces::audit::{AuditProxy, NewRecord};

fn ctl(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(workspace_bin("rampartctl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[tokio::test]
async fn list_and_verify_in_table_and_json_then_a_broken_chain_exits_3() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = audit_daemon(&bus, state.path()).await;
    let audit = AuditProxy::new(&bus.connect().await).await.unwrap();
    for (action, target) in [
        ("firewall.open", "tcp/8080"),
        ("ssh.key_add", "alice"),
        ("firewall.close", "tcp/8080"),
    ] {
        let rec = NewRecord {
            actor: "root@console".into(),
            peer: String::new(),
            action: action.into(),
            target: target.into(),
            outcome: "allowed".into(),
            details: "{}".into(),
        };
        audit.record(&rec).await.unwrap();
    }

    let out = ctl(&bus, &["audit", "list", "--action", "firewall.*"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SEQ") && lines[0].contains("OUTCOME"),
        "{table}"
    );
    assert_eq!(
        lines.len(),
        3,
        "header + 2 firewall records, newest first: {table}"
    );
    assert!(
        lines[1].starts_with('3') && lines[2].starts_with('1'),
        "{table}"
    );

    let out = ctl(
        &bus,
        &["audit", "list", "--json", "--reverse", "--limit", "0"],
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seqs: Vec<u64> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);

    let out = ctl(&bus, &["audit", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["count"].as_u64()),
        (Some(true), Some(3))
    );
    assert!(ctl(&bus, &["audit", "verify"]).status.success());

    // Bad input: clear errors, non-zero exits, nothing changed.
    let out = ctl(&bus, &["audit", "list", "--outcome", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("allowed, denied, failed"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&bus, &["audit", "list", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("RFC 3339"),
        "{}",
        text(&out.stderr)
    );

    d.stop();
    drop(d);
    let db = rusqlite::Connection::open(state.path().join("audit.db")).unwrap();
    db.execute_batch("DROP TRIGGER records_append_only_delete; DELETE FROM records WHERE seq = 2;")
        .unwrap();
    drop(db);
    let _d = audit_daemon(&bus, state.path()).await;
    let out = ctl(&bus, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3), "a broken chain is exit 3");
    assert!(
        text(&out.stdout).contains("BROKEN at record 2"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn without_a_bus_the_error_says_what_to_check() {
    let out = Command::new(workspace_bin("rampartctl"))
        .args(["audit", "verify"])
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/rampart-test-bus",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the system bus"),
        "{}",
        text(&out.stderr)
    );
}
