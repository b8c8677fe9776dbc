//! Root-test plumbing: a private `tenant.slice` tree in the host's cgroup v2 hierarchy, and tenant processes in it.
//!
//! A tenant process is this test binary run again with `RAMPART_MONITOR_ROLE` set (see [`role_main`]): it starts,
//! waits until the parent has written its pid into the tenant's `cgroup.procs` and said "go", then plays its role
//! (send bytes, listen, connect, exec, spin) from inside the tenant's cgroup, so every socket and exec it makes
//! belongs to the tenant. No shell, no extra binaries.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::print_stdout
)] // tests start processes directly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rampart_monitord::bpf::Programs;
use rampart_monitord::events::Reader;
use rampart_monitord::wire::Event;

pub const ROLE_ENV: &str = "RAMPART_MONITOR_ROLE";
/// What a role's own output lines start with.
const MARK: &str = "@@ ";

/// A `tenant.slice` directory of our own, removed (with whatever runs in it killed) on drop.
#[derive(Debug)]
pub struct Tree {
    pub root: PathBuf,
    pub parent: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Tree {
    pub fn new() -> Tree {
        let mount = rampart_monitord::cgroups::cgroup2_mount().unwrap();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = mount.join(format!("rampart-test-{}-{n}", std::process::id()));
        let parent = root.join("tenant.slice");
        std::fs::create_dir_all(&parent).unwrap();
        Tree { root, parent }
    }

    /// Creates `tenant-<name>.slice` and returns its directory.
    pub fn tenant(&self, name: &str) -> PathBuf {
        let dir = self.parent.join(format!("tenant-{name}.slice"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn remove_tenant(&self, name: &str) {
        let dir = self.parent.join(format!("tenant-{name}.slice"));
        kill_all(&dir);
        remove_tree(&dir);
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        kill_all(&self.root);
        remove_tree(&self.root);
    }
}

fn kill_all(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                kill_all(&e.path());
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    // A cgroup is removable once its processes are reaped; give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process of a tenant, playing one role.
#[derive(Debug)]
pub struct Tenant {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Tenant {
    /// Starts `role args…` in the cgroup `dir` (the process is moved in before it does anything).
    pub fn start(dir: &Path, role: &[&str]) -> Tenant {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "role_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Tenant {
            child,
            stdin: Some(stdin),
            stdout,
        }
    }

    /// The next line the role printed that starts with `prefix` (test harness lines are skipped).
    pub fn line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the tenant process ended before printing {prefix:?}"
            );
            // libtest prints "test role_entry ... " in front of the role's first line.
            if let Some(rest) = line
                .split_once(MARK)
                .and_then(|(_, said)| said.trim_end().strip_prefix(prefix))
            {
                return rest.trim().to_owned();
            }
        }
    }

    /// Closes stdin (roles that wait for it end) and waits for the exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

/// Runs one role and exits; called from the `role_entry` test of a root test file.
pub fn role_main(spec: &str) {
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let arg = |i: usize| parts.get(i).copied().unwrap_or("");
    let num = |i: usize| arg(i).parse::<u64>().unwrap();
    match arg(0) {
        // send PORT BYTES: connect, send BYTES, half-close, read the answer to EOF.
        "send" => {
            let mut s = TcpStream::connect(("127.0.0.1", num(1) as u16)).unwrap();
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = num(2) as usize;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).unwrap();
            println!("@@ received {}", answer.len());
        }
        // listen PORT: listen until stdin closes.
        "listen" => {
            let l = TcpListener::bind(("127.0.0.1", num(1) as u16));
            match l {
                Ok(_l) => {
                    println!("@@ listening ok");
                    let mut rest = String::new();
                    let _ = std::io::stdin().read_line(&mut rest);
                }
                Err(e) => println!("@@ listening error {}", e.raw_os_error().unwrap_or(0)),
            }
        }
        // connect PORT: one TCP connection attempt (refused is fine); prints the errno (0: connected).
        "connect" => {
            let r = TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], num(1) as u16)),
                Duration::from_secs(2),
            );
            println!(
                "@@ connect {}",
                r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
            );
        }
        // connects FIRST COUNT: COUNT attempts to successive ports, all from CPU 0 (one sequence of numbers).
        "connects" => {
            let mut cpu0 = nix::sched::CpuSet::new();
            cpu0.set(0).unwrap();
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpu0).unwrap();
            for p in num(1)..num(1) + num(2) {
                let _ = TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], p as u16)),
                    Duration::from_millis(200),
                );
            }
            println!("@@ connects done");
        }
        // exec PATH: run a program and wait for it.
        "exec" => {
            let status = Command::new(arg(1)).status().unwrap();
            println!("@@ exec {}", status.code().unwrap_or(-1));
        }
        // spin SECONDS: burn CPU.
        "spin" => {
            let end = Instant::now() + Duration::from_secs(num(1));
            let mut x = 0u64;
            while Instant::now() < end {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            println!("@@ spun {}", x & 1);
        }
        // Benchmark workloads (benches/overhead.rs): each runs SECS seconds and prints its rate.
        // tcp-rate SECS: a sender and a receiver of this process over loopback; MiB/s received.
        "tcp-rate" => {
            let secs = num(1);
            let server = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = server.local_addr().unwrap();
            let reader = std::thread::spawn(move || {
                let (mut s, _) = server.accept().unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return total,
                        Ok(n) => total += n as u64,
                    }
                }
            });
            let mut s = TcpStream::connect(addr).unwrap();
            let chunk = vec![0u8; 128 * 1024];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(secs) {
                s.write_all(&chunk).unwrap();
            }
            drop(s);
            let total = reader.join().unwrap();
            println!(
                "@@ rate {}",
                total as f64 / 1048576.0 / start.elapsed().as_secs_f64()
            );
        }
        // udp-rate SECS: 64-byte datagrams sent with an address (sendto) over loopback to a socket that is never
        // read, one thread: every datagram passes the send path, the sendmsg hook, egress and ingress; sends/s.
        "udp-rate" => {
            let secs = num(1);
            let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = rx.local_addr().unwrap();
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let payload = [0u8; 64];
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(secs) {
                for _ in 0..256 {
                    let _ = tx.send_to(&payload, addr);
                }
                n += 256;
            }
            println!("@@ rate {}", n as f64 / start.elapsed().as_secs_f64());
            drop(rx);
        }
        // exec-rate SECS: fork+exec /bin/true, one after another; execs/s.
        "exec-rate" => {
            let secs = num(1);
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(secs) {
                Command::new("/bin/true").status().unwrap();
                n += 1;
            }
            println!("@@ rate {}", n as f64 / start.elapsed().as_secs_f64());
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Whether this process should act as a tenant role (set by [`Tenant::start`]).
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Polls `f` until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Events read so far, collected by a [`Reader`].
pub struct Collected(std::sync::mpsc::Receiver<Event>);

impl Collected {
    /// Waits up to 3 s for events matching `pred`, then returns all that match (a short wait after the first, so a
    /// duplicate would be caught).
    pub fn matching(&self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut found = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let left = if found.is_empty() {
                deadline.saturating_duration_since(std::time::Instant::now())
            } else {
                std::time::Duration::from_millis(300)
            };
            match self.0.recv_timeout(left) {
                Ok(e) if pred(&e) => found.push(e),
                Ok(_) => {}
                Err(_) => return found,
            }
        }
    }
}

pub fn reader(progs: &Programs) -> (Reader, Collected) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = Reader::start(progs.events_map(), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    (reader, Collected(rx))
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
