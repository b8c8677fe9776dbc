//! `rampartctl firewall` against the real rampart-firewalld (in a network namespace) and auditd on a private bus.
//! Root only: without root it prints SKIPPED.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use rampart_common::testing::{audit_daemon, require_root, workspace_bin, PrivateBus};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(workspace_bin("rampartctl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn open_list_close_ban_in_text_and_json() {
    if !require_root("open_list_close_ban_in_text_and_json") {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns(format!("rfw-ctl-{}", std::process::id()));
    assert!(Command::new("/usr/sbin/ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    let dir = state.path().join("config/firewalld.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("50-test.toml"),
        format!("database = {:?}\n", state.path().join("fw.db")),
    )
    .unwrap();
    let _fw = Killed(
        Command::new("/usr/sbin/ip")
            .args(["netns", "exec", &ns.0])
            .arg(workspace_bin("rampart-firewalld"))
            .arg("--config-root")
            .arg(state.path().join("config"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("RAMPART_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&bus, &["firewall", "status"]).status.success() {
        assert!(Instant::now() < deadline, "firewalld did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let change = json(&ctl(
        &bus,
        &[
            "firewall",
            "open",
            "tcp",
            "8080,8000-8010",
            "--comment",
            "staging",
            "--expires",
            "2h",
            "--json",
        ],
    ));
    let id = change["rule_id"].as_u64().unwrap();
    let rules = json(&ctl(&bus, &["firewall", "list", "--json"]));
    assert_eq!(rules[0]["ports"], "8000-8010,8080");
    let table = String::from_utf8_lossy(&ctl(&bus, &["firewall", "list"]).stdout).into_owned();
    assert!(
        table.starts_with("ID")
            && table.contains("tcp/8000-8010,8080")
            && table.contains("staging"),
        "{table}"
    );

    let bad = ctl(
        &bus,
        &["firewall", "open", "tcp", "99999", "--comment", "x"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("InvalidArgument"),
        "{bad:?}"
    );

    assert!(
        ctl(&bus, &["firewall", "ban", "198.51.100.7", "--for", "10m"])
            .status
            .success()
    );
    let bans = json(&ctl(&bus, &["firewall", "bans", "--json"]));
    assert_eq!(bans[0]["address"], "198.51.100.7");
    assert!(bans[0]["expires_in"].as_u64().unwrap() > 500);
    assert!(ctl(
        &bus,
        &[
            "firewall",
            "allow",
            "198.51.100.0/24",
            "--comment",
            "office"
        ]
    )
    .status
    .success());
    assert_eq!(
        json(&ctl(&bus, &["firewall", "bans", "--json"])),
        serde_json::json!([])
    );
    assert!(
        !ctl(&bus, &["firewall", "ban", "198.51.100.7"])
            .status
            .success(),
        "allowlisted: exit 1"
    );

    assert!(ctl(&bus, &["firewall", "close", &id.to_string()])
        .status
        .success());
    assert_eq!(
        json(&ctl(&bus, &["firewall", "list", "--json"])),
        serde_json::json!([])
    );
    let status = json(&ctl(&bus, &["firewall", "status", "--json"]));
    assert_eq!(status["ssh"]["ports"], serde_json::json!([22]));
}
