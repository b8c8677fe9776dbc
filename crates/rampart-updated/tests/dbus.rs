//! rampart-updated in-process on a private bus with the real rampart-auditd: a repository signed by
//! rampart-release in a tempdir, the slots as regular files, the ESP as a directory, `/proc` as a directory
//! whose `cmdline` says which slot booted. Rebooting is a counter. No root needed: the test's uid stands for
//! root on the console.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_common::testing::{audit_daemon, Daemon, PrivateBus};
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::update::{UpdateProxy, CHECK_AVAILABLE, CHECK_REFUSED, PHASE_UNAVAILABLE};
use rampart_release::Repo;
use rampart_updated::reboot::{Reboot, RebootFuture};
use rampart_updated::{Slot, Slots};

const RUNNING: &str = env!("CARGO_PKG_VERSION");
const ROOT_A: &str = "817a5b33-81ac-4807-8c2c-5577dd010395";
const ROOT_B: &str = "dce24fa8-a9b0-49e1-bbcb-2af0adffb44d";

#[derive(Debug, Default)]
struct FakeReboot(AtomicUsize);

impl Reboot for FakeReboot {
    fn reboot(&self) -> RebootFuture<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

struct Env {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    _audit: Daemon,
    repo: Repo,
    image: Vec<u8>,
    reboots: Arc<FakeReboot>,
    /// Resolves when the last started daemon's `run` returned.
    stopped: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Env {
    fn t(&self) -> &Path {
        self.dir.path()
    }
    fn slots(&self) -> Slots {
        Slots::image().with_dev_dir(&self.t().join("dev"))
    }
    fn slot_b(&self) -> Vec<u8> {
        std::fs::read(self.slots().device(Slot::B)).unwrap()
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.t().join("esp/loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Writes the drop-in (source, paths, `cmdline`) and starts the daemon; returns once it owns its name.
    async fn start(
        &self,
        source: &Path,
        cmdline: &str,
        console_uid: u32,
    ) -> tokio::sync::oneshot::Sender<()> {
        self.start_as(source, cmdline, "boot-1", None, console_uid)
            .await
    }

    /// [`Env::start`] in a given boot (its id and the version it runs); the returned sender stops the daemon
    /// when dropped or sent to.
    async fn start_as(
        &self,
        source: &Path,
        cmdline: &str,
        boot_id: &str,
        version: Option<semver::Version>,
        console_uid: u32,
    ) -> tokio::sync::oneshot::Sender<()> {
        let t = self.t();
        let proc = t.join("proc");
        std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
        std::fs::write(proc.join("cmdline"), cmdline).unwrap();
        std::fs::write(
            proc.join("sys/kernel/random/boot_id"),
            format!("{boot_id}\n"),
        )
        .unwrap();
        let root = t.join("config");
        std::fs::create_dir_all(root.join("updated.d")).unwrap();
        std::fs::write(
            root.join("updated.d/50-test.toml"),
            format!(
                "source = {:?}\nstate_dir = {:?}\nvar_lib = {:?}\nsnapshot_dir = {:?}\nesp = {:?}\n\
                 device_dir = {:?}\ntrusted_root = {:?}\nproc = {:?}\nsync_every_chunks = 2\n",
                source,
                t.join("var/lib/rampart/updated"),
                t.join("var/lib/rampart"),
                t.join("var/lib/rampart/snapshots"),
                t.join("esp"),
                t.join("dev"),
                t.join("root.json"),
                proc,
            ),
        )
        .unwrap();
        let settings = rampart_updated::settings::load(&[root]).unwrap();
        let builder = self.bus.builder();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reboot: Arc<dyn Reboot> = self.reboots.clone();
        let overrides = rampart_updated::daemon::Overrides {
            console_uid: Some(console_uid),
            running_version: version,
            reboot: Some(reboot),
            tick: Some(Duration::from_millis(100)),
        };
        let (done, self_done) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
                "test"
            };
            if let Err(e) =
                rampart_updated::daemon::run(builder, settings, overrides, shutdown).await
            {
                panic!("daemon failed: {}", rampart_common::error::chain(&e));
            }
            let _ = done.send(());
        });
        *self.stopped.lock().unwrap() = Some(self_done);
        let conn = self.bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let name = zbus::names::BusName::try_from(rampart_interfaces::update::BUS_NAME).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dbus.name_has_owner(name.clone()).await.unwrap() {
            assert!(Instant::now() < deadline, "the daemon did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop
    }

    async fn api(&self) -> UpdateProxy<'static> {
        UpdateProxy::new(&self.bus.connect().await).await.unwrap()
    }
}

fn me() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn booted_a() -> String {
    format!("BOOT_IMAGE=/vmlinuz root=PARTUUID={ROOT_A} rootfstype=erofs ro")
}

/// A signed repository with release 1.1.0, the device as the image leaves it (running `RUNNING` from root-a).
async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let bus = PrivateBus::start();
    let audit = audit_daemon(&bus, &t.join("audit")).await;
    let (repo, image) = common::signed_release(t);
    std::fs::copy(repo.metadata_dir().join("1.root.json"), t.join("root.json")).unwrap();

    let esp = t.join("esp");
    std::fs::create_dir_all(esp.join("loader/entries")).unwrap();
    std::fs::write(
        esp.join(format!("loader/entries/rampart-{RUNNING}.conf")),
        format!("title Rampart {RUNNING}\nversion {RUNNING}\nsort-key rampart\noptions root=PARTUUID={ROOT_A} rootfstype=erofs ro panic=10\n"),
    )
    .unwrap();
    std::fs::create_dir_all(t.join("dev")).unwrap();
    std::fs::write(t.join("dev").join(ROOT_A), vec![0xaau8; 64 * 1024]).unwrap();
    std::fs::write(t.join("dev").join(ROOT_B), vec![0x55u8; 64 * 1024]).unwrap();
    Env {
        dir,
        bus,
        _audit: audit,
        repo,
        image,
        reboots: Arc::default(),
        stopped: std::sync::Mutex::default(),
    }
}

/// Polls Status until the background task is done.
async fn settled(api: &UpdateProxy<'_>) -> rampart_interfaces::update::Status {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = api.status().await.unwrap();
        if !s.busy {
            return s;
        }
        assert!(Instant::now() < deadline, "apply did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_then_apply_writes_the_inactive_slot_and_the_boot_entry() {
    let env = env().await;
    let _stop = env.start(&env.repo.dir, &booted_a(), me()).await;
    let api = env.api().await;

    let s = api.status().await.unwrap();
    assert!(s.available, "{s:?}");
    assert_eq!(
        (
            s.phase.as_str(),
            s.running_version.as_str(),
            s.slot.as_str(),
            s.target_slot.as_str()
        ),
        ("idle", RUNNING, "root-a", "root-b")
    );
    assert!(api.history().await.unwrap().is_empty());

    let c = api.check("").await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.version.as_str()),
        (CHECK_AVAILABLE, "1.1.0"),
        "{c:?}"
    );

    // A token nobody issued (no identityd answers on this bus) is refused, and nothing is written.
    let err = api
        .apply("not-a-session", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(env.slot_b(), vec![0x55u8; 64 * 1024]);

    let s = api.apply("", true).await.unwrap();
    assert!(s.busy, "Apply returns at once with the task running: {s:?}");
    let s = settled(&api).await;
    assert_eq!(s.last_error, "", "{s:?}");
    assert_eq!(
        (s.phase.as_str(), s.update_version.as_str()),
        ("entry-written", "1.1.0")
    );
    assert!(s.reboot_pending);
    assert_eq!(&env.slot_b()[..env.image.len()], &env.image[..]);
    assert_eq!(
        std::fs::read(env.t().join("esp/EFI/rampart/1.1.0/vmlinuz")).unwrap(),
        b"kernel 1.1.0"
    );
    let entry =
        std::fs::read_to_string(env.t().join("esp/loader/entries/rampart-1.1.0+3.conf")).unwrap();
    assert!(
        entry.contains(&format!("root=PARTUUID={ROOT_B}")),
        "{entry}"
    );
    assert_eq!(
        env.reboots.0.load(Ordering::SeqCst),
        1,
        "reboot_now reboots once"
    );
    let h = api.history().await.unwrap();
    assert_eq!(
        (h.len(), h[0].version.as_str(), h[0].outcome.as_str()),
        (1, "1.1.0", "in-progress")
    );
    // The boot entry is the switch: past it, Cancel is refused.
    let err = api.cancel("").await.unwrap_err().to_string();
    assert!(err.contains("boot entry is written"), "{err}");

    // Every mutation was audited, the refused one too: authorize -> audit -> act.
    let audit = AuditProxy::new(&env.bus.connect().await).await.unwrap();
    let filters = HashMap::from([("action".to_owned(), "update.*".to_owned())]);
    let page = audit.query(filters, 0, 100, false).await.unwrap();
    let seen: Vec<(&str, &str, &str)> = page
        .records
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("update.check", "allowed", "root@console"),
            ("update.apply", "denied", "session"),
            ("update.apply", "allowed", "root@console"),
            ("update.cancel", "allowed", "root@console"),
            ("update.cancel", "failed", "root@console"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_is_not_root_is_refused_and_nothing_is_written() {
    let env = env().await;
    let _stop = env.start(&env.repo.dir, &booted_a(), me() + 1).await;
    let api = env.api().await;
    for err in [
        api.check("").await.unwrap_err().to_string(),
        api.apply("", true).await.unwrap_err().to_string(),
        api.cancel("").await.unwrap_err().to_string(),
    ] {
        assert!(err.contains("AccessDenied"), "{err}");
    }
    // Reads need no permission (the bus policy decides who may ask at all).
    assert_eq!(api.status().await.unwrap().phase, "idle");
    assert_eq!(env.slot_b(), vec![0x55u8; 64 * 1024]);
    assert_eq!(env.entries(), [format!("rampart-{RUNNING}.conf")]);
    assert_eq!(env.reboots.0.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_metadata_is_refused_by_check_and_apply() {
    let env = env().await;
    // Bump the release's version inside the signed part of targets: the signature no longer covers it.
    for entry in std::fs::read_dir(env.repo.metadata_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("targets.json")
        {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.contains("\"1.1.0\""));
            std::fs::write(&p, text.replace("\"1.1.0\"", "\"1.1.1\"")).unwrap();
        }
    }
    let _stop = env.start(&env.repo.dir, &booted_a(), me()).await;
    let api = env.api().await;
    let c = api.check("").await.unwrap();
    assert_eq!(c.state, CHECK_REFUSED, "{c:?}");
    assert!(c.message.contains("mix-and-match"), "{c:?}");
    assert_eq!(api.status().await.unwrap().last_error, c.message);

    api.apply("", true).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(s.phase, "idle", "{s:?}");
    assert!(!s.last_error.is_empty());
    assert_eq!(env.slot_b(), vec![0x55u8; 64 * 1024]);
    assert_eq!(env.reboots.0.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_bundle_is_unpacked_and_applied_without_reboot() {
    let env = env().await;
    let bundle = env.t().join("release.tar");
    rampart_release::bundle::write(&env.repo, &bundle).unwrap();
    let _stop = env.start(&bundle, &booted_a(), me()).await;
    let api = env.api().await;
    let c = api.check("").await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.version.as_str()),
        (CHECK_AVAILABLE, "1.1.0"),
        "{c:?}"
    );
    api.apply("", false).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(
        (s.phase.as_str(), s.reboot_pending),
        ("entry-written", true),
        "{s:?}"
    );
    assert!(s.message.contains("reboot to start it"), "{}", s.message);
    assert_eq!(&env.slot_b()[..env.image.len()], &env.image[..]);
    assert_eq!(
        env.reboots.0.load(Ordering::SeqCst),
        0,
        "no --now, no window: no reboot"
    );
    assert!(env
        .t()
        .join("var/lib/rampart/updated/bundle/metadata/timestamp.json")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_booted_from_a_slot_the_daemon_answers_unavailable() {
    let env = env().await;
    let _stop = env.start(&env.repo.dir, "console=ttyS0 quiet", me()).await;
    let api = env.api().await;
    let s = api.status().await.unwrap();
    assert!(!s.available);
    assert_eq!(s.phase, PHASE_UNAVAILABLE);
    assert!(
        s.message
            .contains("not booted from a Rampart slot: updates unavailable"),
        "{}",
        s.message
    );
    let err = api.check("").await.unwrap_err().to_string();
    assert!(err.contains("updates unavailable"), "{err}");
    let err = api.apply("", true).await.unwrap_err().to_string();
    assert!(err.contains("updates unavailable"), "{err}");
    assert_eq!(env.slot_b(), vec![0x55u8; 64 * 1024]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_update_is_cancelled_or_resumed() {
    let env = env().await;
    // A slot device too small for the image: the write stops after the update began.
    std::fs::write(env.slots().device(Slot::B), vec![0x55u8; 4096]).unwrap();
    let _stop = env.start(&env.repo.dir, &booted_a(), me()).await;
    let api = env.api().await;

    api.apply("", false).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(s.phase, "writing-slot", "{s:?}");
    assert!(s.last_error.contains("the image needs"), "{}", s.last_error);
    assert!(s.message.contains("Apply resumes it"), "{}", s.message);

    let s = api.cancel("").await.unwrap();
    assert_eq!((s.phase.as_str(), s.busy), ("idle", false), "{s:?}");
    let h = api.history().await.unwrap();
    assert_eq!((h.len(), h[0].outcome.as_str()), (1, "cancelled"));

    // Again, then the device is fixed and Apply resumes the update in flight (no new attempt in history).
    api.apply("", false).await.unwrap();
    assert_eq!(settled(&api).await.phase, "writing-slot");
    std::fs::write(env.slots().device(Slot::B), vec![0x55u8; 64 * 1024]).unwrap();
    api.apply("", false).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(
        (s.phase.as_str(), s.last_error.as_str()),
        ("entry-written", ""),
        "{s:?}"
    );
    assert_eq!(&env.slot_b()[..env.image.len()], &env.image[..]);
    let h = api.history().await.unwrap();
    let outcomes: Vec<&str> = h.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["cancelled", "in-progress"]);
    assert_eq!(env.reboots.0.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_reboot_the_new_version_is_pending_then_blessed() {
    let env = env().await;
    let stop = env.start(&env.repo.dir, &booted_a(), me()).await;
    let api = env.api().await;
    api.apply("", true).await.unwrap();
    assert_eq!(settled(&api).await.phase, "entry-written");
    // The reboot: the daemon stops (and lets go of the state directory), systemd-boot tries 1.1.0 on root-b.
    drop(stop);
    let stopped = env.stopped.lock().unwrap().take().unwrap();
    stopped.await.unwrap();
    let entries = env.t().join("esp/loader/entries");
    std::fs::rename(
        entries.join("rampart-1.1.0+3.conf"),
        entries.join("rampart-1.1.0+2-1.conf"),
    )
    .unwrap();
    let cmdline = format!("root=PARTUUID={ROOT_B} rootfstype=erofs ro");
    let _stop = env
        .start_as(
            &env.repo.dir,
            &cmdline,
            "boot-2",
            Some(semver::Version::new(1, 1, 0)),
            me(),
        )
        .await;
    let api = env.api().await;
    let s = api.status().await.unwrap();
    assert_eq!(
        (
            s.phase.as_str(),
            s.slot.as_str(),
            s.running_version.as_str()
        ),
        ("pending-bless", "root-b", "1.1.0"),
        "{s:?}"
    );
    // systemd-bless-boot after boot-complete.target: the counter goes; the daemon notices on its tick.
    std::fs::rename(
        entries.join("rampart-1.1.0+2-1.conf"),
        entries.join("rampart-1.1.0.conf"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = api.status().await.unwrap();
        if s.phase == "blessed" {
            break;
        }
        assert!(Instant::now() < deadline, "never blessed: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = api.history().await.unwrap();
    assert_eq!((h.len(), h[0].outcome.as_str()), (1, "blessed"));
    // What the daemon decided on its own is audited too, in its own name.
    let audit = AuditProxy::new(&env.bus.connect().await).await.unwrap();
    let filters = HashMap::from([("actor".to_owned(), "service:rampart-updated".to_owned())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = audit.query(filters.clone(), 0, 100, false).await.unwrap();
        let seen: Vec<(&str, &str)> = page
            .records
            .iter()
            .map(|r| (r.action.as_str(), r.target.as_str()))
            .collect();
        if seen == [("update.trial", "1.1.0"), ("update.blessed", "1.1.0")] {
            break;
        }
        assert!(Instant::now() < deadline, "audited: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts `from` at `to` as a newer file (the staging stamp is path, size and mtime: a same-sized bundle written
/// in the same second must still count as new).
fn replace_bundle(from: &Path, to: &Path, second: u64) {
    std::fs::copy(from, to).unwrap();
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + second);
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_bundle_needs_a_chain_from_the_trusted_root_and_above_the_floors() {
    let env = env().await;
    let t = env.t();
    // Three bundles: 1.1.0 as the repository is now; 1.2.0 published after it by the same keys (every role's
    // version higher); and a release signed by keys this machine never trusted.
    let old = t.join("old.tar");
    rampart_release::bundle::write(&env.repo, &old).unwrap();
    let keys = rampart_release::KeyDir::load(&t.join("keys")).unwrap();
    let inputs = rampart_release::build::Inputs {
        rootfs: t.join("root-a.img"),
        kernel: t.join("vmlinuz"),
        initrd: t.join("initrd.img"),
        version: "1.2.0".into(),
        min_installed_version: "0.1.0".into(),
        variant: "x86_64".into(),
        chunk_size: 4096,
        zstd_level: 3,
    };
    rampart_release::build::build(
        &env.repo,
        &keys,
        &inputs,
        rampart_release::repo::Expiry::default(),
    )
    .unwrap();
    let new = t.join("new.tar");
    rampart_release::bundle::write(&env.repo, &new).unwrap();
    let other = t.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (other_repo, _) = common::signed_release(&other);
    let forged = t.join("forged.tar");
    rampart_release::bundle::write(&other_repo, &forged).unwrap();

    let medium = t.join("medium.tar");
    replace_bundle(&forged, &medium, 1);
    let _stop = env.start(&medium, &booted_a(), me()).await;
    let api = env.api().await;
    let c = api.check("").await.unwrap();
    assert_eq!(c.state, CHECK_REFUSED, "{c:?}");
    assert!(c.version.is_empty(), "nothing of it is believed: {c:?}");
    api.apply("", true).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(s.phase, "idle", "{s:?}");
    assert!(!s.last_error.is_empty());

    replace_bundle(&new, &medium, 2);
    let c = api.check("").await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.version.as_str()),
        (CHECK_AVAILABLE, "1.2.0"),
        "{c:?}"
    );
    // The older bundle is signed by the same keys, but its metadata is older than what this machine has seen.
    replace_bundle(&old, &medium, 3);
    let c = api.check("").await.unwrap();
    assert_eq!(c.state, CHECK_REFUSED, "{c:?}");
    assert!(c.message.contains("version"), "{c:?}");
    api.apply("", true).await.unwrap();
    let s = settled(&api).await;
    assert_eq!(s.phase, "idle", "{s:?}");
    assert_eq!(
        env.slot_b(),
        vec![0x55u8; 64 * 1024],
        "the slot was never written"
    );
    assert_eq!(env.reboots.0.load(Ordering::SeqCst), 0);
}
