//! The host's real `/usr/sbin/sshd` in a network namespace, configured by rampart-sshconfd on a private bus, with
//! the real `ssh` client and `ssh-audit` against it. Needs root (SKIPPED otherwise): it creates a network namespace,
//! three throw-away local users (removed at the end) and `/run/sshd` if missing.
//!
//! Run: `cargo test -p rampart-sshconfd --test real_sshd -- --nocapture` as root.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{config_root, eventually, fake_firewall, keygen, now};
use rampart_common::testing::{audit_daemon, require_root, workspace_bin, Daemon, PrivateBus};
use rampart_interfaces::ssh::{SshProxy, BUS_NAME};

const TOOLS: &[&str] = &[
    "/usr/sbin/sshd",
    "/usr/bin/ssh",
    "/usr/bin/ssh-keygen",
    "/usr/bin/ssh-audit",
    "/usr/sbin/ip",
    "/usr/sbin/useradd",
    "/usr/sbin/userdel",
];

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace with loopback up, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("rampart-sshtest-{}", std::process::id());
        run("/usr/sbin/ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.exec("/usr/sbin/ip", &["link", "set", "lo", "up"]);
        // Two non-loopback addresses: a login on the new port must come from "elsewhere" to count as evidence
        // (sshconfd ignores connections from loopback or from the server's own address).
        for addr in [SERVER_ADDR, CLIENT_ADDR] {
            ns.exec(
                "/usr/sbin/ip",
                &["addr", "add", &format!("{addr}/32"), "dev", "lo"],
            );
        }
        ns
    }
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/sbin/ip");
        cmd.args(["netns", "exec", &self.0, program]).args(args);
        cmd
    }
    fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

/// A local user with a home, removed on drop.
struct User(String);

impl User {
    fn new(name: String) -> User {
        let _ = Command::new("/usr/sbin/userdel")
            .args(["-r", &name])
            .output();
        run("/usr/sbin/useradd", &["-m", "-s", "/bin/sh", &name]);
        User(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/userdel")
            .args(["-r", "-f", &self.0])
            .output();
    }
}

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ssh -p port user@127.0.0.1 true` inside the namespace with only `key` offered.
const SERVER_ADDR: &str = "10.99.0.1";
const CLIENT_ADDR: &str = "10.99.0.2";

fn ssh(ns: &Netns, port: u16, user: &str, key: &Path, extra: &[&str]) -> Output {
    let port = port.to_string();
    let key = key.to_str().unwrap();
    let mut args = vec![
        "-F",
        "/dev/null",
        "-i",
        key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        "-p",
        &port,
    ];
    args.extend_from_slice(extra);
    // Port 22 listens on loopback only until a port is set; other ports are reached "from outside".
    let host = if port == "22" {
        "127.0.0.1"
    } else {
        args.extend(["-b", CLIENT_ADDR]);
        SERVER_ADDR
    };
    let target = format!("{user}@{host}");
    args.extend([target.as_str(), "true"]);
    ns.exec("/usr/bin/ssh", &args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_keys_only_port_change_and_ssh_audit_clean() {
    if !require_root("real_sshd_keys_only_port_change_and_ssh_audit_clean") {
        return;
    }
    for tool in TOOLS {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install openssh-server, openssh-client, ssh-audit"
        );
    }
    // sshd refuses an AuthorizedKeysCommand with any group/world-writable directory on its path, and a clone of
    // the repository may well live under /tmp: run a copy from a root-owned 0755 directory under /run.
    let keys_dir = PathBuf::from(format!("/run/rampart-keys-test-{}", std::process::id()));
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::set_permissions(
        &keys_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let keys_command = keys_dir.join("rampart-authorized-keys");
    std::fs::copy(workspace_bin("rampart-authorized-keys"), &keys_command).unwrap();
    let _keys_dir = RemoveOnDrop(keys_dir);
    std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation directory

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ns = Netns::new();
    let tag = std::process::id() % 100_000;
    let (alice, bob, carol) = (
        User::new(format!("rsa{tag}")),
        User::new(format!("rsb{tag}")),
        User::new(format!("rsc{tag}")),
    );
    // alice also has a password: it must not be usable.
    let mut chpasswd = Command::new("/usr/sbin/chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{}:Secret-123\n", alice.0).as_bytes(),
    )
    .unwrap();
    assert!(chpasswd.wait().unwrap().success());

    // Host keys as rampart-hostkeys.service makes them; the image's include chain in miniature.
    let host = dir.join("hostkeys");
    std::fs::create_dir(&host).unwrap();
    keygen(&host, "ssh_host_ed25519_key", "ed25519", None);
    keygen(&host, "ssh_host_rsa_key", "rsa", Some(3072));
    let dropins = dir.join("sshd_config.d");
    let main_config = dir.join("sshd_config");
    let (pid_file, log) = (dir.join("sshd.pid"), dir.join("sshd.log"));
    std::fs::write(
        &main_config,
        format!(
            "HostKey {h}/ssh_host_ed25519_key\nHostKey {h}/ssh_host_rsa_key\nInclude {d}/*.conf\nPidFile {p}\n{debian}",
            h = host.display(),
            d = dropins.display(),
            p = pid_file.display(),
            debian = std::fs::read_to_string("/etc/ssh/sshd_config").unwrap()
        ),
    )
    .unwrap();
    std::fs::write(&log, "").unwrap();

    let bus = PrivateBus::start();
    // The keys command runs as `nobody` (our AuthorizedKeysCommandUser here): let it reach the bus socket.
    let socket_dir = PathBuf::from(
        bus.address()
            .trim_start_matches("unix:path=")
            .split(',')
            .next()
            .unwrap(),
    );
    let socket_dir = socket_dir.parent().unwrap();
    run("/usr/bin/chmod", &["0755", socket_dir.to_str().unwrap()]);
    let _audit = audit_daemon(&bus, &dir.join("audit")).await;
    let (_fw_conn, fw) = fake_firewall(&bus, &[22]).await;
    let root = config_root(
        dir,
        &format!(
            "database = {:?}\nconfig_dir = {:?}\nmain_config = {:?}\nhost_keys = {:?}\nkeys_command = {:?}\n\
             keys_command_user = \"nobody\"\nkeys_command_bus = {:?}\nsshd_pid_file = {:?}\nsshd_log_file = {:?}\n",
            dir.join("ssh.db"),
            dropins,
            main_config,
            host,
            keys_command,
            bus.address(),
            pid_file,
            log
        ),
    );
    let _daemon = Daemon::spawn(
        &bus,
        "rampart-sshconfd",
        &["--config-root", root.to_str().unwrap()],
        BUS_NAME,
    )
    .await;
    let generated = std::fs::read_to_string(dropins.join("50-rampart.conf")).unwrap();
    assert!(
        generated.contains("ListenAddress 127.0.0.1:22\n"),
        "{generated}"
    );

    let _sshd = Sshd(
        ns.command(
            "/usr/sbin/sshd",
            &[
                "-D",
                "-f",
                main_config.to_str().unwrap(),
                "-E",
                log.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap(),
    );
    eventually(10, "sshd listening on 127.0.0.1:22", async || {
        log_has(&log, "Server listening on 127.0.0.1 port 22").then_some(())
    })
    .await;

    let ssh_api = SshProxy::new(&bus.connect().await).await.unwrap();
    let keys = dir.join("client");
    std::fs::create_dir(&keys).unwrap();
    let alice_key = keygen(&keys, "alice", "ed25519", None);
    let bob_key = keygen(&keys, "bob", "ed25519", None);
    let carol_key = keygen(&keys, "carol", "ed25519", None);
    let added = ssh_api
        .add_key("", &alice.0, &alice_key, "", 0)
        .await
        .unwrap();
    ssh_api.add_key("", &bob.0, &bob_key, "", 0).await.unwrap();
    ssh_api
        .set_account("", &bob.0, true, now() - 1)
        .await
        .unwrap();
    // carol's key only in her ~/.ssh/authorized_keys, planted by hand.
    let ssh_dir = PathBuf::from(format!("/home/{}/.ssh", carol.0));
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("authorized_keys"), format!("{carol_key}\n")).unwrap();
    run(
        "/usr/bin/chown",
        &[
            "-R",
            &format!("{0}:{0}", carol.0),
            ssh_dir.to_str().unwrap(),
        ],
    );
    run("/usr/bin/chmod", &["0700", ssh_dir.to_str().unwrap()]);

    let out = ssh(&ns, 22, &alice.0, &keys.join("alice"), &[]);
    assert!(
        out.status.success(),
        "alice's key login on 22 (no port set yet): {}",
        text(&out.stderr)
    );

    // Port change: refused ports, then 2222 with commit-confirm.
    for bad in [22, 80, 3306] {
        let err = ssh_api.set_port("", bad).await.unwrap_err();
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    let change = ssh_api.set_port("", 2222).await.unwrap();
    assert_eq!(
        (change.state.as_str(), change.new_port),
        ("awaiting-login", 2222),
        "{change:?}"
    );
    assert_eq!(fw.lock().unwrap().calls, ["set 22,2222"]);
    eventually(10, "sshd listening on 2222", async || {
        log_has(&log, "Server listening on 0.0.0.0 port 2222").then_some(())
    })
    .await;
    let err = ssh_api.confirm_port("").await.unwrap_err();
    assert!(
        err.to_string().contains("log in on port 2222 first"),
        "{err}"
    );
    let out = ssh(&ns, 2222, &alice.0, &keys.join("alice"), &[]);
    assert!(
        out.status.success(),
        "alice's key login on 2222: {}",
        text(&out.stderr)
    );
    let done = eventually(10, "ConfirmPort accepted after the login", async || {
        ssh_api.confirm_port("").await.ok()
    })
    .await;
    assert_eq!(done.state, "idle", "{done:?}");
    let status = ssh_api.status().await.unwrap();
    assert_eq!(
        (status.port, status.listening.clone()),
        (2222, vec![2222]),
        "{status:?}"
    );
    assert_eq!(
        fw.lock().unwrap().calls,
        ["set 22,2222", "set 2222", "confirm 2"]
    );
    eventually(10, "port 22 refused", async || {
        let out = ssh(&ns, 22, &alice.0, &keys.join("alice"), &[]);
        text(&out.stderr)
            .contains("Connection refused")
            .then_some(())
    })
    .await;

    // Only stored keys of enabled, unexpired non-root accounts log in; only publickey is offered.
    let out = ssh(&ns, 2222, &alice.0, &keys.join("alice"), &[]);
    assert!(
        out.status.success(),
        "alice on the new port: {}",
        text(&out.stderr)
    );
    let refused = [
        (bob.0.as_str(), "bob", "expired account"),
        (
            carol.0.as_str(),
            "carol",
            "key planted in ~/.ssh/authorized_keys",
        ),
        ("root", "alice", "root login"),
    ];
    for (user, key, why) in refused {
        let out = ssh(&ns, 2222, user, &keys.join(key), &[]);
        assert!(!out.status.success(), "{why} was let in");
        assert!(
            text(&out.stderr).contains("Permission denied (publickey)"),
            "{why}: {}",
            text(&out.stderr)
        );
    }
    let out = ssh(
        &ns,
        2222,
        &alice.0,
        &keys.join("alice"),
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)."),
        "only publickey may be offered: {}",
        text(&out.stderr)
    );

    // Last use recorded from sshd's log.
    let used = eventually(10, "alice's key last use", async || {
        let keys = ssh_api.keys(&alice.0).await.unwrap();
        keys.into_iter()
            .find(|k| k.fingerprint == added.fingerprint && k.last_used != 0)
    })
    .await;
    assert!(used.last_used + 60 >= now(), "{used:?}");
    let host_keys = ssh_api.host_keys().await.unwrap();
    let algs: Vec<(&str, u32)> = host_keys
        .iter()
        .map(|k| (k.algorithm.as_str(), k.bits))
        .collect();
    assert_eq!(algs, [("ssh-ed25519", 256), ("ssh-rsa", 3072)]);

    // ssh-audit: no failure, no warning.
    let out = ns.exec("/usr/bin/ssh-audit", &["-n", "-p", "2222", "127.0.0.1"]);
    let report = text(&out.stdout);
    println!("ssh-audit report:\n{report}");
    // The one accepted line: ssh-audit 2.5 predates the Terrapin countermeasure Debian's sshd 9.2 advertises
    // (`kex-strict-s-v00@openssh.com`, known to ssh-audit >= 3.1) and calls it "unknown". Anything else fails.
    let terrapin = |l: &str| {
        l.contains("kex-strict-s-v00@openssh.com") && l.contains("[warn] unknown algorithm")
    };
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| (l.contains("[fail]") || l.contains("[warn]")) && !terrapin(l))
        .collect();
    assert!(bad.is_empty(), "ssh-audit complains:\n{}", bad.join("\n"));
    assert!(
        report.contains("(kex) curve25519-sha256"),
        "ssh-audit did not report the key exchange:\n{report}"
    );
}

/// Removes a directory tree when dropped (also when the test panics).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
