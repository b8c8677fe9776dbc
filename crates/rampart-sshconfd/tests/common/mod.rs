//! Shared test support: a fake rampart-firewalld on the private bus (records calls, can be told to fail), key
//! generation, and the daemon's drop-in for a temporary layout.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rampart_common::testing::PrivateBus;
use rampart_interfaces::firewall::{Change, SshAccess, Status};
use rampart_interfaces::Error as BusError;

/// What the fake firewall saw and how it behaves.
#[derive(Debug, Default)]
pub struct FwState {
    pub ssh: Vec<u16>,
    /// Every call, e.g. `set 22,2222`, `confirm 7`.
    pub calls: Vec<String>,
    /// Refuse SetSshAccess calls that would add this port.
    pub refuse_port: Option<u16>,
    next_id: u64,
}

#[derive(Debug, Clone)]
pub struct FakeFirewall(pub Arc<Mutex<FwState>>);

#[zbus::interface(name = "org.rampart.Firewall1")]
impl FakeFirewall {
    async fn status(&self) -> Result<Status, BusError> {
        let s = self.0.lock().unwrap();
        Ok(Status {
            ssh: SshAccess {
                ports: s.ssh.clone(),
                sources: vec![],
            },
            rules: 0,
            bans: 0,
            pending_changes: 0,
            last_reconciled: 0,
        })
    }

    async fn set_ssh_access(&self, _token: &str, access: SshAccess) -> Result<Change, BusError> {
        let mut s = self.0.lock().unwrap();
        let text: Vec<String> = access.ports.iter().map(u16::to_string).collect();
        s.calls.push(format!("set {}", text.join(",")));
        if s.refuse_port.is_some_and(|p| access.ports.contains(&p)) {
            return Err(BusError::Failed("fake firewall told to refuse".into()));
        }
        let narrowing = s.ssh.iter().any(|p| !access.ports.contains(p));
        s.ssh = access.ports;
        s.next_id += 1;
        Ok(Change {
            change_id: s.next_id,
            rule_id: 0,
            confirm_by: if narrowing { 4_000_000_000 } else { 0 },
        })
    }

    async fn confirm(&self, _token: &str, change_id: u64) -> Result<(), BusError> {
        self.0
            .lock()
            .unwrap()
            .calls
            .push(format!("confirm {change_id}"));
        Ok(())
    }
}

/// Serves the fake firewall on `bus`, SSH on `ports` to start with.
pub async fn fake_firewall(
    bus: &PrivateBus,
    ports: &[u16],
) -> (zbus::Connection, Arc<Mutex<FwState>>) {
    let state = Arc::new(Mutex::new(FwState {
        ssh: ports.to_vec(),
        ..FwState::default()
    }));
    let conn = bus
        .builder()
        .serve_at(
            rampart_interfaces::firewall::OBJECT_PATH,
            FakeFirewall(Arc::clone(&state)),
        )
        .unwrap()
        .name(rampart_interfaces::firewall::BUS_NAME)
        .unwrap()
        .build()
        .await
        .unwrap();
    (conn, state)
}

/// `ssh-keygen -t <kind> [-b bits]` into `dir/name`; returns the public line.
pub fn keygen(dir: &Path, name: &str, kind: &str, bits: Option<u32>) -> String {
    let path = dir.join(name);
    let mut cmd = Command::new("/usr/bin/ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path);
    if let Some(b) = bits {
        cmd.args(["-b", &b.to_string()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Writes `<root>/sshconfd.d/50-test.toml` with `lines` and returns the root.
pub fn config_root(dir: &Path, lines: &str) -> PathBuf {
    let root = dir.join("config");
    std::fs::create_dir_all(root.join("sshconfd.d")).unwrap();
    std::fs::write(root.join("sshconfd.d/50-test.toml"), lines).unwrap();
    root
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `f` every 100 ms until it returns Some, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
