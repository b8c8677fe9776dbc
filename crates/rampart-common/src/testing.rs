//! Test support (feature `testing`): a private system bus, the workspace's built binaries, a private journald,
//! and stand-ins for daemons ([`fakes`]).
#![allow(clippy::disallowed_methods)] // tests start helper processes directly

pub mod fakes;

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

/// A daemon binary from this workspace running against a [`PrivateBus`]; stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `binary` with `args` and waits (up to 10 s) until it owns `bus_name`.
    pub async fn spawn(bus: &PrivateBus, binary: &str, args: &[&str], bus_name: &str) -> Daemon {
        let child = Command::new(workspace_bin(binary))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("RAMPART_LOG", "warn")
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let mut daemon = Daemon { child };
        let conn = bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("bus proxy");
        let name = zbus::names::BusName::try_from(bus_name).expect("bus name");
        for _ in 0..200 {
            if dbus.name_has_owner(name.clone()).await.unwrap_or(false) {
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{binary} exited before owning {bus_name}: {status}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{binary} did not own {bus_name} within 10 s");
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("wait for daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A running rampart-auditd on `bus` with its database in `state`, configured through a drop-in like production.
pub async fn audit_daemon(bus: &PrivateBus, state: &std::path::Path) -> Daemon {
    let dir = state.join("config/auditd.d");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(
        dir.join("50-test.toml"),
        format!("database = {:?}\n", state.join("audit.db")),
    )
    .expect("config");
    let root = state.join("config");
    let root = root.to_str().expect("utf-8 path");
    Daemon::spawn(
        bus,
        "rampart-auditd",
        &["--config-root", root],
        rampart_interfaces::audit::BUS_NAME,
    )
    .await
}

/// A real `systemd-journald` for root tests and benchmarks, isolated from the host: bubblewrap starts it in a
/// private mount namespace where `/run/systemd` and `/run/log` are bind mounts of a temporary directory and its
/// configuration is ours (volatile storage, no rate limit, no forwarding, no kernel log). From the outside its
/// socket is [`PrivateJournal::socket`] and its files are under [`PrivateJournal::directory`]
/// (`journalctl --directory=`). Needs root (mount namespace, and journald keeps root's capabilities under
/// bwrap); check [`require_root`] first. Stopped on drop.
#[derive(Debug)]
pub struct PrivateJournal {
    child: Child,
    dir: tempfile::TempDir,
    socket: std::os::unix::net::UnixDatagram,
}

const JOURNALD_CONF: &str = "[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
ForwardToKMsg=no
RuntimeMaxUse=512M
";

impl PrivateJournal {
    pub fn start() -> PrivateJournal {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["systemd/journal", "log/journal"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("journal dirs");
        }
        std::fs::write(dir.path().join("journald.conf"), JOURNALD_CONF).expect("journald.conf");
        let d = dir.path();
        let child = Command::new("bwrap")
            .args(["--dev-bind", "/", "/", "--bind"])
            .arg(d.join("systemd"))
            .arg("/run/systemd")
            .arg("--bind")
            .arg(d.join("log"))
            .arg("/run/log")
            .arg("--ro-bind")
            .arg(d.join("journald.conf"))
            .args(["/etc/systemd/journald.conf", "--die-with-parent", "--"])
            .arg("/lib/systemd/systemd-journald")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "start systemd-journald under bwrap (needs root and the bubblewrap and systemd packages)",
            );
        let mut journal = PrivateJournal {
            child,
            dir,
            socket: std::os::unix::net::UnixDatagram::unbound().expect("datagram socket"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !(journal.socket().exists() && journal.has_journal_file()) {
            if let Ok(Some(status)) = journal.child.try_wait() {
                panic!("systemd-journald exited at start: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "journald did not start within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        journal
    }

    /// journald creates `<machine-id>/` before `system.journal` in it; a journalctl started in between does not
    /// notice the file appearing, so readiness is the file itself.
    fn has_journal_file(&self) -> bool {
        let Ok(dirs) = std::fs::read_dir(self.directory()) else {
            return false;
        };
        dirs.flatten()
            .any(|d| d.path().join("system.journal").exists())
    }

    /// The native protocol socket (`/run/systemd/journal/socket` inside).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("systemd/journal/socket")
    }

    /// The journal files, for `journalctl --directory=`.
    pub fn directory(&self) -> PathBuf {
        self.dir.path().join("log/journal")
    }

    /// Logs one entry through the native protocol (values with newlines use its binary form). `_PID`, `_UID`…
    /// are this process's; set `SYSLOG_PID` to pose as another process.
    pub fn send(&self, fields: &[(&str, &str)]) {
        let mut datagram = Vec::with_capacity(256);
        for (name, value) in fields {
            datagram.extend_from_slice(name.as_bytes());
            if value.contains('\n') {
                datagram.push(b'\n');
                datagram.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                datagram.push(b'=');
            }
            datagram.extend_from_slice(value.as_bytes());
            datagram.push(b'\n');
        }
        // A full receive queue (journald busy) is EAGAIN on a non-blocking socket; this one blocks instead.
        self.socket
            .send_to(&datagram, self.socket())
            .expect("send to journald");
    }

    /// Asks journald to rotate its files (SIGUSR2), as `journalctl --rotate` does.
    pub fn rotate(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR2).expect("signal journald");
    }
}

impl Drop for PrivateJournal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
