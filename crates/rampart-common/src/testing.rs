//! Test support (feature `testing`): a private system bus, and the workspace's built binaries.
#![allow(clippy::disallowed_methods)] // tests start helper processes directly

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A private `dbus-daemon` of type `system` with an allow-all policy, torn down on drop.
#[derive(Debug)]
pub struct PrivateBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus.sock");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("write bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address", "--nopidfile"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-daemon (install the dbus package)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read bus address");
        PrivateBus {
            child,
            address: line.trim().to_owned(),
            _dir: dir,
        }
    }

    /// The address, for `DBUS_SYSTEM_BUS_ADDRESS` of a child process.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A connection builder for in-process clients and services.
    pub fn builder(&self) -> zbus::connection::Builder<'static> {
        zbus::connection::Builder::address(self.address.as_str())
            .expect("bus address")
            .auth_mechanism(zbus::AuthMechanism::External)
    }

    /// A client connection.
    pub async fn connect(&self) -> zbus::Connection {
        self.builder()
            .build()
            .await
            .expect("connect to private bus")
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a binary built from this workspace (`cargo test --workspace` builds them all beside the test).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// True when running as root; otherwise prints a SKIPPED line naming the test.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("SKIPPED {test}: needs root (CI runs as root)");
    false
}
