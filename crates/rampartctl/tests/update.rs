//! `rampartctl update` against the real rampart-updated (and rampart-auditd) on a private system bus, in the
//! container case: not booted from a Rampart slot, so the daemon answers but updates are unavailable.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests run the binaries directly and may panic

use std::process::{Command, Output};

use rampart_common::testing::{audit_daemon, workspace_bin, Daemon, PrivateBus};

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
async fn status_and_check_say_updates_are_unavailable_outside_a_slot() {
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let t = state.path();
    let _audit = audit_daemon(&bus, &t.join("audit")).await;
    let proc = t.join("proc");
    std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
    std::fs::write(proc.join("cmdline"), "console=ttyS0\n").unwrap();
    std::fs::write(proc.join("sys/kernel/random/boot_id"), "b\n").unwrap();
    std::fs::create_dir_all(t.join("config/updated.d")).unwrap();
    std::fs::write(
        t.join("config/updated.d/50-test.toml"),
        format!(
            "source = {:?}\nstate_dir = {:?}\nproc = {:?}\n",
            t.join("repo"),
            t.join("state"),
            proc
        ),
    )
    .unwrap();
    let root = t.join("config");
    let _d = Daemon::spawn(
        &bus,
        "rampart-updated",
        &["--config-root", root.to_str().unwrap()],
        rampart_interfaces::update::BUS_NAME,
    )
    .await;

    let out = ctl(&bus, &["update", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["available"], false);
    assert_eq!(v["phase"], "unavailable");
    let out = ctl(&bus, &["update", "status"]);
    assert!(
        text(&out.stdout).contains("not booted from a Rampart slot: updates unavailable"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&bus, &["update", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("check refused") && text(&out.stderr).contains("unavailable"),
        "{}",
        text(&out.stderr)
    );
    // The timer's command: nothing to do here is not an error (the unit would show failed on every container).
    let out = ctl(&bus, &["update", "auto"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("updates unavailable"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&bus, &["update", "history", "--json"]);
    assert_eq!(text(&out.stdout).trim(), "[]");
    let out = ctl(&bus, &["update", "apply", "--bogus"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}
