//! rampart-guardd end to end (root only): a real journald in a mount namespace, a private bus, the real auditd,
//! and a minimal stand-in for org.rampart.Firewall1 that records Ban calls (the real firewalld has its own tests).
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests start processes directly and may panic

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_common::testing::{
    audit_daemon, require_root, workspace_bin, PrivateBus, PrivateJournal,
};
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::firewall::{Allowed, BUS_NAME, OBJECT_PATH};

type Bans = Arc<Mutex<Vec<(String, u64, String)>>>;

struct FakeFirewall {
    bans: Bans,
}

#[zbus::interface(name = "org.rampart.Firewall1")]
impl FakeFirewall {
    fn ban(&self, _token: &str, address: &str, seconds: u64, reason: &str) -> bool {
        self.bans
            .lock()
            .unwrap()
            .push((address.to_owned(), seconds, reason.to_owned()));
        true
    }
    fn allowlist(&self) -> Vec<Allowed> {
        vec![Allowed {
            cidr: "192.0.2.0/24".into(),
            comment: "from the firewall".into(),
            added_by: "root@console".into(),
            added_at: 0,
        }]
    }
}

/// The guardd binary; killed on drop so a failed assertion leaves nothing running.
struct Guardd(Child);

impl Drop for Guardd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn guardd(bus: &PrivateBus, config: &Path) -> Guardd {
    Guardd(
        Command::new(workspace_bin("rampart-guardd"))
            .args(["--config-root", config.to_str().unwrap()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("RAMPART_LOG", "info")
            .spawn()
            .unwrap(),
    )
}

fn stop(guardd: &mut Guardd) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(guardd.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    guardd.0.wait().unwrap()
}

fn sshd(journal: &PrivateJournal, message: &str) {
    journal.send(&[
        ("SYSLOG_IDENTIFIER", "sshd"),
        ("SYSLOG_PID", "4242"),
        ("MESSAGE", message),
    ]);
}

fn failure(journal: &PrivateJournal, addr: &str) {
    sshd(
        journal,
        &format!("Failed password for root from {addr} port 5555 ssh2"),
    );
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// guardd starts at the end of the journal: log noise until its cursor file shows it has read something.
async fn wait_until_following(journal: &PrivateJournal, cursor: &Path, before: Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        sshd(journal, "Server listening on 0.0.0.0 port 22.");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = std::fs::read_to_string(cursor).ok();
        if now.is_some() && now != before {
            return;
        }
        assert!(Instant::now() < deadline, "guardd never read the journal");
    }
}

fn bans_of(bans: &Bans, addr: &str) -> usize {
    bans.lock()
        .unwrap()
        .iter()
        .filter(|(a, _, _)| a == addr)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_once_spares_allowlisted_and_resumes_without_rebanning() {
    if !require_root("bans_once_spares_allowlisted_and_resumes_without_rebanning") {
        return;
    }
    let journal = PrivateJournal::start();
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _auditd = audit_daemon(&bus, state.path()).await;
    let bans: Bans = Arc::default();
    let _firewall = rampart_common::bus::serve_on(
        bus.builder(),
        BUS_NAME,
        OBJECT_PATH,
        FakeFirewall {
            bans: Arc::clone(&bans),
        },
    )
    .await
    .unwrap();

    let cursor = state.path().join("cursor");
    let config = state.path().join("guard-config");
    std::fs::create_dir_all(config.join("guardd.d")).unwrap();
    std::fs::write(
        config.join("guardd.d/50-test.toml"),
        format!(
            "ssh_max_failures = 3\nban_base_secs = 2\nallowlist = [\"198.51.100.0/24\"]\n\
             cursor_file = {:?}\njournal_directory = {:?}\njournal_matches = [\"SYSLOG_IDENTIFIER=sshd\"]\n",
            cursor,
            journal.directory()
        ),
    )
    .unwrap();

    let mut guard = guardd(&bus, &config);
    wait_until_following(&journal, &cursor, None).await;

    for _ in 0..10 {
        failure(&journal, "198.51.100.7"); // allowlisted in settings
        failure(&journal, "192.0.2.8"); // allowlisted by the firewall
    }
    for _ in 0..2 {
        failure(&journal, "203.0.113.50"); // below the threshold
    }
    for _ in 0..3 {
        failure(&journal, "203.0.113.9");
    }
    for _ in 0..3 {
        failure(&journal, "203.0.113.9"); // logged before the ban took effect: no second ban
    }
    wait_for("the ban of 203.0.113.9", || {
        bans_of(&bans, "203.0.113.9") >= 1
    })
    .await;
    // Let guardd read everything logged so far, then stop it (it saves its cursor on the way out).
    let before = std::fs::read_to_string(&cursor).ok();
    wait_until_following(&journal, &cursor, before).await;
    assert!(
        stop(&mut guard).success(),
        "guardd exits cleanly on SIGTERM"
    );
    {
        let got = bans.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "exactly one ban: {got:?}");
        let (addr, seconds, reason) = &got[0];
        assert_eq!((addr.as_str(), *seconds), ("203.0.113.9", 2));
        assert!(reason.contains("3 ssh failures"), "{reason}");
    }

    // Restart: resumes after the saved cursor, so the old lines never ban again.
    let saved = std::fs::read_to_string(&cursor).unwrap();
    let mut guard = guardd(&bus, &config);
    for _ in 0..3 {
        failure(&journal, "203.0.113.77");
    }
    wait_for("the ban of 203.0.113.77 after the restart", || {
        bans_of(&bans, "203.0.113.77") == 1
    })
    .await;
    assert_eq!(
        bans_of(&bans, "203.0.113.9"),
        1,
        "no re-ban from lines read before the restart"
    );
    assert_eq!(
        bans_of(&bans, "198.51.100.7") + bans_of(&bans, "192.0.2.8"),
        0
    );
    assert_eq!(bans_of(&bans, "203.0.113.50"), 0);
    wait_for("the cursor to move on", || {
        std::fs::read_to_string(&cursor).unwrap() != saved
    })
    .await;

    // The 2-second ban of 203.0.113.77 runs out: guardd records its end in the audit log.
    let audit = AuditProxy::new(&bus.connect().await).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let filters = [("action", "guard.unban"), ("target", "203.0.113.77")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let page = audit.query(filters, 0, 10, false).await.unwrap();
        if let Some(r) = page.records.first() {
            assert_eq!(r.actor, "service:rampart-guardd");
            break;
        }
        assert!(Instant::now() < deadline, "no guard.unban record");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stop(&mut guard).success());
}
