//! Shared helpers for the root tests: network namespaces, the daemon inside one, kernel state via nft.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rampart_common::testing::{workspace_bin, PrivateBus};
use rampart_interfaces::audit::{AuditProxy, Record};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "rfw-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("/usr/sbin/ip", &["netns", "add", &name]);
        run("/usr/sbin/ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// `nft args…` inside the namespace; panics on failure.
    pub fn nft(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, "/usr/sbin/nft"];
        all.extend_from_slice(args);
        run("/usr/sbin/ip", &all)
    }

    /// `nft -j list table inet rampart` as JSON.
    pub fn table_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.nft(&["-j", "list", "table", "inet", "rampart"])).unwrap()
    }

    /// Text of the whole ruleset (for assertions by rule comment).
    pub fn ruleset(&self) -> String {
        self.nft(&["list", "ruleset"])
    }

    /// Elements of a ban set: (address, timeout, expires) from nft JSON.
    pub fn set_elements(&self, set: &str) -> Vec<(String, u64, u64)> {
        let v: serde_json::Value =
            serde_json::from_str(&self.nft(&["-j", "list", "set", "inet", "rampart", set]))
                .unwrap();
        let mut out = Vec::new();
        for item in v["nftables"].as_array().unwrap() {
            if let Some(elems) = item["set"]["elem"].as_array() {
                for e in elems {
                    let inner = &e["elem"];
                    out.push((
                        inner["val"].as_str().unwrap_or_default().to_owned(),
                        inner["timeout"].as_u64().unwrap_or(0),
                        inner["expires"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out: Output = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a firewalld drop-in under `state/config` and returns the config root.
pub fn config(state: &Path, extra: &str) -> PathBuf {
    let dir = state.join("config/firewalld.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("50-test.toml"),
        format!(
            "database = {:?}\nreconcile_interval = \"1s\"\nconfirm_timeout = \"3s\"\n",
            state.join("firewall.db")
        ),
    )
    .unwrap();
    // A later drop-in overrides the test defaults, as an admin's /etc file would.
    std::fs::write(dir.join("60-test.toml"), extra).unwrap();
    state.join("config")
}

/// rampart-firewalld running inside `ns`, on `bus`; SIGTERM on drop.
#[derive(Debug)]
pub struct Firewalld {
    child: Child,
}

impl Firewalld {
    pub async fn start(bus: &PrivateBus, ns: &Netns, config_root: &Path) -> Firewalld {
        let bin = workspace_bin("rampart-firewalld");
        let child = Command::new("/usr/sbin/ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin)
            .arg("--config-root")
            .arg(config_root)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("RAMPART_LOG", "warn")
            .spawn()
            .unwrap();
        let mut d = Firewalld { child };
        let conn = bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let name = zbus::names::BusName::try_from(rampart_interfaces::firewall::BUS_NAME).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dbus.name_has_owner(name.clone()).await.unwrap_or(false) {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("rampart-firewalld exited before owning its name: {status}");
            }
            assert!(Instant::now() < deadline, "rampart-firewalld did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d
    }

    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "firewalld exited with {status}");
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it returns true or `secs` pass; panics with `what` on timeout.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Audit records with this action.
pub async fn audit_records(audit: &AuditProxy<'_>, action: &str) -> Vec<Record> {
    let filters: HashMap<String, String> = [("action".to_owned(), action.to_owned())].into();
    audit.query(filters, 0, 0, false).await.unwrap().records
}

/// Polls the audit log until a record with `action` appears.
pub async fn await_audit(audit: &AuditProxy<'_>, action: &str, secs: u64) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let recs = audit_records(audit, action).await;
        if !recs.is_empty() {
            return recs;
        }
        assert!(
            Instant::now() < deadline,
            "no {action} audit record within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
