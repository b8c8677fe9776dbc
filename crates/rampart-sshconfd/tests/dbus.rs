//! rampart-sshconfd in-process on a private bus with the real rampart-auditd and a fake firewall; sshd is replaced
//! by `/bin/true` (validation passes) or `/bin/false` (validation fails), and its log by a file the test writes.
//! No root needed: the test's uid stands for root on the console.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{config_root, eventually, fake_firewall, keygen, now};
use rampart_common::testing::{audit_daemon, PrivateBus};
use rampart_interfaces::ssh::SshProxy;

struct Env {
    dir: tempfile::TempDir,
    bus: PrivateBus,
}

impl Env {
    fn dropin(&self) -> PathBuf {
        self.dir.path().join("dropins/50-rampart.conf")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }
    fn settings(&self, sshd: &str) -> rampart_sshconfd::settings::Settings {
        let d = self.dir.path();
        std::fs::write(self.log(), "").unwrap();
        let root = config_root(
            d,
            &format!(
                "database = {:?}\nconfig_dir = {:?}\nmain_config = \"/etc/ssh/sshd_config\"\nsshd = {sshd:?}\n\
                 host_keys = {:?}\nsshd_pid_file = {:?}\nsshd_log_file = {:?}\nconfirm_seconds = 5\n",
                d.join("ssh.db"),
                d.join("dropins"),
                d.join("hostkeys"),
                d.join("no-sshd.pid"),
                self.log()
            ),
        );
        rampart_sshconfd::settings::load(&[root]).unwrap()
    }
    /// Starts the daemon in this process; returns once it owns its name.
    async fn start(&self, sshd: &str) -> tokio::sync::oneshot::Sender<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = self.settings(sshd);
        let builder = self.bus.builder();
        let uid = nix::unistd::getuid().as_raw();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
                "test"
            };
            if let Err(e) = rampart_sshconfd::run(builder, settings, Some(uid), shutdown).await {
                panic!("daemon failed: {}", rampart_common::error::chain(&e));
            }
        });
        let conn = self.bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        eventually(10, "the daemon on the bus", async || {
            let name = zbus::names::BusName::try_from(rampart_interfaces::ssh::BUS_NAME).unwrap();
            dbus.name_has_owner(name).await.unwrap().then_some(())
        })
        .await;
        stop
    }
}

fn listen(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ListenAddress ").map(str::to_owned))
        .collect()
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
}

async fn env() -> (Env, rampart_common::testing::Daemon) {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        bus: PrivateBus::start(),
    };
    let audit = audit_daemon(&env.bus, &env.dir.path().join("audit")).await;
    std::fs::create_dir(env.dir.path().join("hostkeys")).unwrap();
    keygen(
        &env.dir.path().join("hostkeys"),
        "ssh_host_ed25519_key",
        "ed25519",
        None,
    );
    (env, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_validated_and_served_only_to_enabled_unexpired_accounts() {
    let (env, _audit) = env().await;
    let _fw = fake_firewall(&env.bus, &[22]).await;
    let _stop = env.start("/bin/true").await;
    assert_eq!(
        listen(&env.dropin()),
        ["127.0.0.1:22"],
        "no port set: loopback only"
    );
    let api = SshProxy::new(&env.bus.connect().await).await.unwrap();
    let keys = env.dir.path().join("client");
    std::fs::create_dir(&keys).unwrap();
    let ed = keygen(&keys, "ed", "ed25519", None);
    let weak = keygen(&keys, "weak", "rsa", Some(2048));
    let rsa = keygen(&keys, "rsa", "rsa", Some(3072));

    for (user, line, want) in [
        ("alice", format!("command=\"/bin/sh\" {ed}"), "options"),
        ("alice", weak.clone(), "2048 bits"),
        ("alice", format!("{ed}\n{rsa}"), "control"),
        ("root", ed.clone(), "root never logs in"),
        ("Alice;rm", ed.clone(), "not a valid user name"),
    ] {
        let err = api.add_key("", user, &line, "", 0).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("InvalidArgument") && text.contains(want),
            "{user} {line:?}: {text}"
        );
    }
    let k = api.add_key("", "alice", &ed, "laptop", 0).await.unwrap();
    assert_eq!(
        (
            k.algorithm.as_str(),
            k.comment.as_str(),
            k.added_by.as_str()
        ),
        ("ssh-ed25519", "laptop", "root@console")
    );
    let r = api
        .add_key("", "alice", &rsa, "", now() + 3600)
        .await
        .unwrap();
    assert_eq!((r.algorithm.as_str(), r.bits), ("ssh-rsa", 3072));
    let served = api.authorized_keys("alice").await.unwrap();
    assert_eq!(served.len(), 2);
    assert!(
        served
            .iter()
            .all(|l| !l.contains("laptop") && !l.contains('\n')),
        "{served:?}"
    );
    assert!(api.authorized_keys("nobody-here").await.unwrap().is_empty());
    assert!(api.authorized_keys("../etc").await.unwrap().is_empty());

    api.set_account("", "alice", false, 0).await.unwrap();
    assert!(
        api.authorized_keys("alice").await.unwrap().is_empty(),
        "disabled"
    );
    api.set_account("", "alice", true, now() - 1).await.unwrap();
    assert!(
        api.authorized_keys("alice").await.unwrap().is_empty(),
        "expired"
    );
    api.set_account("", "alice", true, 0).await.unwrap();
    api.remove_key("", &r.fingerprint).await.unwrap();
    assert_eq!(api.authorized_keys("alice").await.unwrap().len(), 1);
    let err = api.remove_key("", &r.fingerprint).await.unwrap_err();
    assert!(err.to_string().contains("no stored key"), "{err}");
    let host = api.host_keys().await.unwrap();
    assert_eq!(host.len(), 1);
    assert!(host[0].fingerprint.starts_with("SHA256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_change_reverts_when_the_firewall_fails_or_the_deadline_passes_and_confirms_on_evidence(
) {
    let (env, _audit) = env().await;
    let (_fw_conn, fw) = fake_firewall(&env.bus, &[22]).await;
    let _stop = env.start("/bin/true").await;
    let api = SshProxy::new(&env.bus.connect().await).await.unwrap();

    // 1. The firewall refuses to open the new port: nothing changes, and the firewall is put back.
    fw.lock().unwrap().refuse_port = Some(2222);
    let err = api.set_port("", 2222).await.unwrap_err();
    assert!(err.to_string().contains("firewall"), "{err}");
    let s = api.status().await.unwrap();
    assert_eq!((s.port, s.change.state.as_str()), (0, "idle"), "{s:?}");
    assert!(s.change.message.contains("reverted"), "{s:?}");
    assert_eq!(listen(&env.dropin()), ["127.0.0.1:22"]);
    assert_eq!(fw.lock().unwrap().calls, ["set 22,2222", "set 22"]);
    fw.lock().unwrap().refuse_port = None;
    fw.lock().unwrap().calls.clear();

    // 2. No confirmation before the deadline (5 s here): back to the old port.
    let c = api.set_port("", 40022).await.unwrap();
    assert_eq!(c.state, "awaiting-login");
    assert_eq!(
        listen(&env.dropin()),
        ["127.0.0.1:22", "0.0.0.0:40022", "[::]:40022"]
    );
    let err = api.confirm_port("").await.unwrap_err();
    assert!(
        err.to_string().contains("log in on port 40022 first"),
        "{err}"
    );
    let s = eventually(15, "the deadline revert", async || {
        let s = api.status().await.unwrap();
        (s.change.state == "idle").then_some(s)
    })
    .await;
    assert!(s.change.message.contains("not confirmed in time"), "{s:?}");
    assert_eq!(s.port, 0);
    assert_eq!(listen(&env.dropin()), ["127.0.0.1:22"]);
    assert_eq!(
        fw.lock().unwrap().calls,
        ["set 22,40022", "set 22", "confirm 3"]
    );
    fw.lock().unwrap().calls.clear();

    // 3. A login that arrived on the new port (as sshd logs it) lets the change finish.
    let k = api
        .add_key(
            "",
            "alice",
            &keygen(env.dir.path(), "a", "ed25519", None),
            "",
            0,
        )
        .await
        .unwrap();
    api.set_port("", 40022).await.unwrap();
    // A login on the old port proves nothing.
    append(
        &env.log(),
        "Connection from 192.0.2.7 port 5000 on 192.0.2.1 port 22 rdomain \"\"",
    );
    append(
        &env.log(),
        &format!(
            "Accepted publickey for alice from 192.0.2.7 port 5000 ssh2: ED25519 {}",
            k.fingerprint
        ),
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let err = api.confirm_port("").await.unwrap_err();
    assert!(
        err.to_string().contains("log in on port 40022 first"),
        "{err}"
    );
    append(
        &env.log(),
        "Connection from 192.0.2.7 port 5001 on 192.0.2.1 port 40022 rdomain \"\"",
    );
    append(
        &env.log(),
        &format!(
            "Accepted publickey for alice from 192.0.2.7 port 5001 ssh2: ED25519 {}",
            k.fingerprint
        ),
    );
    let done = eventually(10, "ConfirmPort", async || api.confirm_port("").await.ok()).await;
    assert_eq!(done.state, "idle");
    let s = api.status().await.unwrap();
    assert_eq!((s.port, s.listening), (40022, vec![40022]));
    assert_eq!(listen(&env.dropin()), ["0.0.0.0:40022", "[::]:40022"]);
    assert_eq!(
        fw.lock().unwrap().calls,
        ["set 22,40022", "set 40022", "confirm 5"]
    );
    let keys = api.keys("alice").await.unwrap();
    assert!(keys[0].last_used + 60 >= now(), "{keys:?}");
    for bad in [22, 80, 1023, 3306, 40022] {
        assert!(api.set_port("", bad).await.is_err(), "{bad} accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_sshd_refuses_changes_nothing() {
    let (env, _audit) = env().await;
    let settings = env.settings("/bin/false");
    let err = rampart_sshconfd::run(env.bus.builder(), settings, None, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, rampart_sshconfd::Error::Validate { .. }),
        "{err}"
    );
    assert!(!env.dropin().exists(), "nothing installed");
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path().join("dropins"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}
