//! rampart-tenantd in-process on a private bus with the real rampart-auditd, a fake sshconfd and a fake systemd
//! (no systemd runs here; the real Manager calls are exercised by tests/nspawn/tenants). No root needed: the
//! test's uid stands for root on the console, and for sshd's owner.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_common::testing::fakes::{fake_ssh, SshState};
use rampart_common::testing::{audit_daemon, Daemon, PrivateBus};
use rampart_common::units::UnitState;
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::tenant::{Plan, TenantProxy};
use rampart_tenantd::systemd::{Reply, ServiceSpec, States, Systemd};

/// Records what it was asked, answers ok unless told to fail calls starting with `fail`; keeps which services
/// run (a stopped slice stops its tenant's).
#[derive(Debug, Default)]
struct FakeSystemd {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Option<String>>,
    running: Mutex<BTreeSet<String>>,
}

impl FakeSystemd {
    /// Records `call`; whether it is to fail.
    fn refuse(&self, call: &str) -> bool {
        self.calls.lock().unwrap().push(call.to_owned());
        self.fail
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|f| call.starts_with(f.as_str()))
    }
    fn answer(&self, call: String) -> Reply<'_> {
        let refuse = self.refuse(&call);
        Box::pin(async move {
            if refuse {
                Err(format!("fake systemd told to fail {call}"))
            } else {
                Ok(())
            }
        })
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

fn limits(p: &Plan) -> String {
    format!("cpu={} tasks={}", p.cpu_percent, p.tasks_max)
}

impl Systemd for FakeSystemd {
    fn ensure_slice<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a> {
        self.answer(format!("ensure {slice} {}", limits(plan)))
    }
    fn set_limits<'a>(&'a self, slice: &'a str, plan: &'a Plan) -> Reply<'a> {
        self.answer(format!("limits {slice} {}", limits(plan)))
    }
    fn stop<'a>(&'a self, unit: &'a str) -> Reply<'a> {
        if let Some(tenant) = unit.strip_suffix(".slice") {
            let inside = format!("{tenant}-");
            self.running
                .lock()
                .unwrap()
                .retain(|u| !u.starts_with(&inside));
        }
        self.answer(format!("stop {unit}"))
    }
    fn start_scope<'a>(&'a self, scope: &'a str, slice: &'a str, pid: u32) -> Reply<'a> {
        self.answer(format!("scope {scope} in {slice} pid {pid}"))
    }
    fn start_service<'a>(&'a self, unit: &'a str, spec: ServiceSpec<'a>) -> Reply<'a> {
        let call = format!(
            "service {unit} uid={} in {} dir={} argv={}",
            spec.uid,
            spec.slice,
            spec.directory.display(),
            spec.argv.join(" ")
        );
        if !self.refuse(&call) {
            self.running.lock().unwrap().insert(unit.to_owned());
            return Box::pin(async { Ok(()) });
        }
        Box::pin(async move { Err(format!("fake systemd told to fail {call}")) })
    }
    fn stop_service<'a>(&'a self, unit: &'a str) -> Reply<'a> {
        self.running.lock().unwrap().remove(unit);
        self.answer(format!("stop-service {unit}"))
    }
    fn states<'a>(&'a self, pattern: &'a str) -> States<'a> {
        let prefix = pattern.split('*').next().unwrap();
        let units: Vec<UnitState> = self
            .running
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.starts_with(prefix) && (pattern.contains('*') || *u == pattern))
            .map(|u| UnitState {
                unit: u.clone(),
                description: String::new(),
                active: "active".into(),
                sub: "running".into(),
            })
            .collect();
        Box::pin(async move { Ok(units) })
    }
}

struct Env {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    _audit: Daemon,
    _ssh_conn: zbus::Connection,
    ssh: Arc<Mutex<SshState>>,
    systemd: Arc<FakeSystemd>,
}

const CONFIG: &str = r#"
[plans.small]
cpu_percent = 50
memory_max = "512M"
io_weight = 100
tasks_max = 256

[plans.large]
cpu_percent = 200
memory_max = "4G"
io_weight = 400
tasks_max = 2048
"#;

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start();
        let audit = audit_daemon(&bus, dir.path()).await;
        let (ssh_conn, ssh) = fake_ssh(&bus).await;
        std::fs::create_dir_all(dir.path().join("userdb")).unwrap();
        Env {
            dir,
            bus,
            _audit: audit,
            _ssh_conn: ssh_conn,
            ssh,
            systemd: Arc::new(FakeSystemd::default()),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Starts the daemon in this process with `console_uid` as root; returns once it owns its name.
    async fn start(&self, console_uid: u32) -> tokio::sync::oneshot::Sender<()> {
        let conf = self.path("config/tenantd.d");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("50-test.toml"),
            format!(
                "database = {:?}\ndirectory_root = {:?}\nuserdb_dir = {:?}\n{CONFIG}",
                self.path("tenants.db"),
                self.path("tenants"),
                self.path("userdb")
            ),
        )
        .unwrap();
        let settings = rampart_tenantd::settings::load(&[self.path("config")]).unwrap();
        let overrides = rampart_tenantd::Overrides {
            console_uid: Some(console_uid),
            systemd: Some(self.systemd.clone()),
            no_chown: !nix::unistd::geteuid().is_root(),
            proc_root: None,
            tick: Some(Duration::from_millis(200)),
            retention: Some(Duration::from_secs(3)),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let builder = self.bus.builder();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
                "test"
            };
            if let Err(e) = rampart_tenantd::run(builder, settings, overrides, shutdown).await {
                panic!("daemon failed: {}", rampart_common::error::chain(&e));
            }
        });
        let conn = self.bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let name = zbus::names::BusName::try_from(rampart_interfaces::tenant::BUS_NAME).unwrap();
        for _ in 0..100 {
            if dbus.name_has_owner(name.clone()).await.unwrap() {
                return stop;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("rampart-tenantd did not own its name within 10 s");
    }

    async fn api(&self) -> TenantProxy<'static> {
        TenantProxy::new(&self.bus.connect().await).await.unwrap()
    }

    /// (actor, action, target, outcome) of every tenant.* record, oldest first.
    async fn audit(&self) -> Vec<(String, String, String, String)> {
        let audit = AuditProxy::new(&self.bus.connect().await).await.unwrap();
        let filters = HashMap::from([("action".to_owned(), "tenant.*".to_owned())]);
        let page = audit.query(filters, 0, 1000, false).await.unwrap();
        page.records
            .into_iter()
            .map(|r| (r.actor, r.action, r.target, r.outcome))
            .collect()
    }
}

/// The error's D-Bus name (short) and message.
fn refused<T: std::fmt::Debug>(r: zbus::Result<T>) -> (String, String) {
    match r {
        Err(zbus::Error::MethodError(name, text, _)) => (
            name.as_str().rsplit('.').next().unwrap().to_owned(),
            text.unwrap_or_default(),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A process whose command name is `sshd` (a copy of sleep), owned by the test's uid.
struct FakeSshd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl FakeSshd {
    fn start() -> FakeSshd {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("sshd");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        FakeSshd {
            child: Command::new(&exe).arg("60").spawn().unwrap(),
            _dir: dir,
        }
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FakeSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the PAM hook as pam_exec would, as the child of coreutils' `timeout` (its parent, which it may kill, and
/// which otherwise exits with the hook's status) rather than of this test. No shell.
fn session_hook(bus: &PrivateBus, kind: &str, user: &str) -> std::process::Output {
    Command::new("timeout")
        .args(["--", "60"])
        .arg(env!("CARGO_BIN_EXE_rampart-tenant-session"))
        .env_clear()
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env("PAM_TYPE", kind)
        .env("PAM_USER", user)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn life_cycle_with_refusals_rollback_purge_and_audit() {
    let env = Env::new().await;
    let uid = nix::unistd::getuid().as_raw();
    let _stop = env.start(uid).await;
    let api = env.api().await;

    let plans = api.plans().await.unwrap();
    assert_eq!(
        plans.iter().map(|p| &p.name[..]).collect::<Vec<_>>(),
        ["large", "small"]
    );

    // Create: user records with the group membership, the chroot and data directories, SSH on, the slice.
    env.systemd.take();
    let shop = api.create("", "shop", "small").await.unwrap();
    assert_eq!(
        (shop.state.as_str(), shop.plan.as_str()),
        ("active", "small")
    );
    assert!((20_000..=29_999).contains(&shop.uid), "{}", shop.uid);
    assert_eq!(shop.slice, "tenant-shop.slice");
    assert_eq!(shop.created_by, "root@console");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("userdb/shop.user")).unwrap())
            .unwrap();
    assert_eq!(record["uid"], shop.uid);
    assert_eq!(record["shell"], "/usr/sbin/nologin");
    assert_eq!(
        record["homeDirectory"],
        env.path("tenants/shop/data").display().to_string()
    );
    assert!(env.path("userdb/shop:rampart-tenants.membership").exists());
    assert!(env.path(&format!("userdb/{}.user", shop.uid)).exists());
    assert_eq!(mode(&env.path("tenants/shop")), 0o755);
    assert_eq!(mode(&env.path("tenants/shop/data")), 0o700);
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=50 tasks=256"]
    );
    assert_eq!(
        env.ssh.lock().unwrap().set_account,
        [("shop".to_owned(), true, 0)]
    );

    // Refusals: nothing changes.
    for (name, plan, kind, needle) in [
        (
            "Shop!",
            "small",
            "InvalidArgument",
            "not a valid tenant name",
        ),
        ("blog", "huge", "InvalidArgument", "no plan \"huge\""),
        ("daemon", "small", "Failed", "already a user"),
        ("shop", "small", "Failed", "already exists"),
    ] {
        let (k, text) = refused(api.create("", name, plan).await);
        assert_eq!(k, kind, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
    }
    let (k, _) = refused(api.create("not-a-session", "blog", "small").await);
    assert_eq!(k, "AccessDenied", "a token identityd does not vouch for");
    assert!(!env.path("userdb/daemon.user").exists());
    assert!(env.systemd.take().is_empty());

    // A failing step is taken back: the slice cannot be made, so no directory, records, SSH access or row.
    *env.systemd.fail.lock().unwrap() = Some("ensure tenant-blog".into());
    let (k, text) = refused(api.create("", "blog", "small").await);
    assert_eq!(k, "Failed");
    assert!(text.contains("fake systemd told to fail"), "{text}");
    *env.systemd.fail.lock().unwrap() = None;
    assert!(!env.path("tenants/blog").exists());
    assert!(!env.path("userdb/blog.user").exists());
    assert_eq!(
        env.ssh.lock().unwrap().set_account[1..],
        [("blog".to_owned(), true, 0), ("blog".to_owned(), false, 0)]
    );
    assert_eq!(api.list().await.unwrap().len(), 1);

    // Plan change: the running slice's limits change.
    env.systemd.take();
    let shop = api.set_plan("", "shop", "large").await.unwrap();
    assert_eq!(shop.plan, "large");
    assert_eq!(
        env.systemd.take(),
        ["limits tenant-shop.slice cpu=200 tasks=2048"]
    );

    // Sessions: sshd's process goes into a scope; anything else is refused.
    let sshd = FakeSshd::start();
    api.open_session("shop", sshd.pid()).await.unwrap();
    let calls = env.systemd.take();
    assert_eq!(
        calls.last().unwrap(),
        &format!(
            "scope tenant-shop-session-{0}.scope in tenant-shop.slice pid {0}",
            sshd.pid()
        )
    );
    let (k, text) = refused(api.open_session("shop", std::process::id()).await);
    assert_eq!(k, "AccessDenied");
    assert!(text.contains("not sshd"), "{text}");
    let out = session_hook(&env.bus, "account", "shop");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the hook's parent is not sshd: refused"
    );
    // A session outside the tenant's slice ends its connection: the hook kills its parent (here `timeout`).
    let out = session_hook(&env.bus, "open_session", "shop");
    assert_eq!(out.status.signal(), Some(9), "the parent was killed");
    assert_eq!(
        out.status.code(),
        None,
        "the parent did not survive to pass on the hook's status"
    );
    assert!(session_hook(&env.bus, "close_session", "shop")
        .status
        .success());

    // Suspend: SSH off, slice stopped, sessions refused; then resume.
    let (k, _) = refused(api.suspend("", "shop", " ").await);
    assert_eq!(k, "InvalidArgument", "a reason is required");
    let shop = api.suspend("", "shop", "unpaid invoice").await.unwrap();
    assert_eq!(
        (shop.state.as_str(), shop.reason.as_str()),
        ("suspended", "unpaid invoice")
    );
    assert_eq!(env.systemd.take(), ["stop tenant-shop.slice"]);
    assert_eq!(
        env.ssh.lock().unwrap().set_account.last().unwrap(),
        &("shop".to_owned(), false, 0)
    );
    let (k, text) = refused(api.open_session("shop", sshd.pid()).await);
    assert_eq!(k, "AccessDenied");
    assert!(text.contains("suspended"), "{text}");
    let (_, text) = refused(api.suspend("", "shop", "again").await);
    assert!(text.contains("is suspended"), "{text}");
    let shop = api.resume("", "shop").await.unwrap();
    assert_eq!((shop.state.as_str(), shop.reason.as_str()), ("active", ""));
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=200 tasks=2048"]
    );

    // Delete: stopped and refused at once, data kept until the purge, then everything goes.
    env.ssh
        .lock()
        .unwrap()
        .keys
        .push(("shop".into(), "ssh-ed25519 AAAAshop".into()));
    std::fs::write(env.path("tenants/shop/data/index.html"), "hello").unwrap();
    let shop = api.delete("", "shop", "contract ended").await.unwrap();
    assert_eq!(shop.state, "deleted");
    assert!(shop.purge_at > 0);
    assert!(env.path("tenants/shop/data/index.html").exists());
    let (_, text) = refused(api.open_session("shop", sshd.pid()).await);
    assert!(text.contains("deleted"), "{text}");
    let mut purged = false;
    for _ in 0..100 {
        if api.list().await.unwrap().is_empty() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "purged after the retention");
    assert!(!env.path("tenants/shop").exists());
    assert!(!env.path("userdb/shop.user").exists());
    assert!(!env.path("userdb/shop:rampart-tenants.membership").exists());
    assert!(env.ssh.lock().unwrap().keys.is_empty(), "its keys went too");

    // Every mutating call is in the audit log, the refused and the failed ones too.
    let log = env.audit().await;
    let has = |actor: &str, action: &str, target: &str, outcome: &str| {
        log.iter().any(|(a, ac, t, o)| {
            a == actor && ac == action && t.starts_with(target) && o == outcome
        })
    };
    for (actor, action, target, outcome) in [
        ("root@console", "tenant.create", "shop", "allowed"),
        ("root@console", "tenant.create", "daemon", "failed"),
        ("session", "tenant.create", "blog", "denied"),
        ("root@console", "tenant.create", "blog", "failed"),
        ("root@console", "tenant.plan", "shop", "allowed"),
        ("shop", "tenant.session", "shop pid", "allowed"),
        ("shop", "tenant.session", "shop pid", "denied"),
        ("root@console", "tenant.suspend", "shop", "allowed"),
        ("root@console", "tenant.suspend", "shop", "failed"),
        ("root@console", "tenant.resume", "shop", "allowed"),
        ("root@console", "tenant.delete", "shop", "allowed"),
        ("service:rampart-tenantd", "tenant.purge", "shop", "allowed"),
    ] {
        assert!(
            has(actor, action, target, outcome),
            "{actor} {action} {target} {outcome}: {log:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_and_rewrites_user_records() {
    let env = Env::new().await;
    let uid = nix::unistd::getuid().as_raw();
    let stop = env.start(uid).await;
    let api = env.api().await;
    api.create("", "shop", "small").await.unwrap();
    api.create("", "blog", "large").await.unwrap();
    api.suspend("", "blog", "abuse report").await.unwrap();
    let before = api.list().await.unwrap();
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A boot empties /run: the records are gone, and so are the transient slices.
    for entry in std::fs::read_dir(env.path("userdb")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(
        env.path("userdb/stale.user"),
        r#"{"userName":"stale","uid":20999}"#,
    )
    .unwrap();
    env.systemd.take();
    let _stop = env.start(uid).await;
    let api = env.api().await;
    assert_eq!(api.list().await.unwrap(), before);
    for file in [
        "shop.user",
        "blog.user",
        "shop:rampart-tenants.membership",
        "blog.group",
    ] {
        assert!(env.path("userdb").join(file).exists(), "{file} rewritten");
    }
    assert!(
        !env.path("userdb/stale.user").exists(),
        "ours, not in the database"
    );
    let mut calls = env.systemd.take();
    calls.sort();
    assert_eq!(
        calls,
        [
            "ensure tenant-shop.slice cpu=50 tasks=256",
            "stop tenant-blog.slice"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_root_changes_tenants_or_opens_sessions() {
    let env = Env::new().await;
    // Someone else is root: this test's process is an ordinary user.
    let _stop = env.start(nix::unistd::getuid().as_raw() + 1).await;
    let api = env.api().await;
    let (k, _) = refused(api.create("", "shop", "small").await);
    assert_eq!(k, "AccessDenied");
    let sshd = FakeSshd::start();
    let (k, text) = refused(api.open_session("shop", sshd.pid()).await);
    assert_eq!(k, "AccessDenied");
    assert!(text.contains("only root"), "{text}");
    assert!(env.systemd.take().is_empty());
    let log = env.audit().await;
    assert!(
        log.iter()
            .any(|(_, a, t, o)| a == "tenant.create" && t == "shop" && o == "denied"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|(a, ac, _, o)| a == "shop" && ac == "tenant.session" && o == "denied"),
        "{log:?}"
    );
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// (name, active) of `tenant`'s services.
async fn services(api: &TenantProxy<'_>, tenant: &str) -> Vec<(String, String)> {
    api.services(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.active))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_while_the_tenant_is_active_and_come_back() {
    let env = Env::new().await;
    let uid = nix::unistd::getuid().as_raw();
    let stop = env.start(uid).await;
    let api = env.api().await;
    let shop = api.create("", "shop", "small").await.unwrap();
    let data = env.path("tenants/shop/data").display().to_string();
    env.systemd.take();

    // Started in the tenant's slice, as its uid, in its data directory, with the command line as given.
    let web = argv(&["/usr/bin/python3", "-m", "http.server", "$HOME"]);
    let info = api
        .start_service("", "shop", "web", web.clone())
        .await
        .unwrap();
    assert_eq!(
        (&info.unit[..], &info.active[..], &info.sub[..]),
        ("tenant-shop-web.service", "active", "running")
    );
    assert_eq!((&info.argv, &info.created_by[..]), (&web, "root@console"));
    let start_web = format!(
        "service tenant-shop-web.service uid={} in tenant-shop.slice dir={data} argv={}",
        shop.uid,
        web.join(" ")
    );
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=50 tasks=256", &start_web]
    );

    // Refused at the boundary: nothing reaches systemd.
    let long = "y".repeat(4097);
    let many = vec!["/bin/true".to_owned(); 65];
    for (tenant, name, args, needle) in [
        (
            "Shop",
            "web",
            argv(&["/bin/true"]),
            "not a valid tenant name",
        ),
        ("nobody", "web", argv(&["/bin/true"]), "no tenant named"),
        (
            "shop",
            "Web",
            argv(&["/bin/true"]),
            "not a valid service name",
        ),
        (
            "shop",
            "-web",
            argv(&["/bin/true"]),
            "not a valid service name",
        ),
        (
            "shop",
            "web.x",
            argv(&["/bin/true"]),
            "not a valid service name",
        ),
        ("shop", &"w".repeat(33), argv(&["/bin/true"]), "at most 32"),
        ("shop", "api", vec![], "empty"),
        ("shop", "api", argv(&["python3", "app.py"]), "absolute path"),
        (
            "shop",
            "api",
            argv(&["/bin/echo", &long]),
            "longer than 4096",
        ),
        ("shop", "api", many, "at most 64"),
    ] {
        let (k, text) = refused(api.start_service("", tenant, name, args).await);
        assert_eq!(k, "InvalidArgument", "{tenant} {name}: {text}");
        assert!(text.contains(needle), "{tenant} {name}: {text}");
    }
    let (k, text) = refused(
        api.start_service("", "shop", "web", argv(&["/bin/true"]))
            .await,
    );
    assert_eq!(k, "Failed");
    assert!(text.contains("already has a service web"), "{text}");
    let (k, _) = refused(
        api.start_service("not-a-session", "shop", "api", argv(&["/bin/true"]))
            .await,
    );
    assert_eq!(k, "AccessDenied");
    assert!(env.systemd.take().is_empty());

    // A start systemd refuses leaves nothing: the unit is forgotten, no row.
    *env.systemd.fail.lock().unwrap() = Some("service tenant-shop-bad".into());
    let (k, text) = refused(
        api.start_service("", "shop", "bad", argv(&["/nonexistent"]))
            .await,
    );
    *env.systemd.fail.lock().unwrap() = None;
    assert_eq!(k, "Failed");
    assert!(text.contains("start the service bad"), "{text}");
    assert_eq!(
        env.systemd.take().last().unwrap(),
        "stop-service tenant-shop-bad.service"
    );
    assert_eq!(
        services(&api, "shop").await,
        [("web".into(), "active".into())]
    );
    let (k, _) = refused(api.services("nobody").await);
    assert_eq!(k, "InvalidArgument");

    // Suspend stops it with the slice; it may not start while suspended; resume starts it again.
    api.suspend("", "shop", "unpaid").await.unwrap();
    assert_eq!(
        services(&api, "shop").await,
        [("web".into(), "inactive".into())]
    );
    let (k, text) = refused(
        api.start_service("", "shop", "api", argv(&["/bin/true"]))
            .await,
    );
    assert_eq!(k, "Failed");
    assert!(text.contains("is suspended"), "{text}");
    env.systemd.take();
    api.resume("", "shop").await.unwrap();
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=50 tasks=256", &start_web]
    );
    assert_eq!(
        services(&api, "shop").await,
        [("web".into(), "active".into())]
    );

    // A resume whose service cannot start is taken back whole: the tenant stays suspended.
    api.suspend("", "shop", "unpaid").await.unwrap();
    *env.systemd.fail.lock().unwrap() = Some("service tenant-shop-web".into());
    let (k, text) = refused(api.resume("", "shop").await);
    *env.systemd.fail.lock().unwrap() = None;
    assert_eq!(k, "Failed");
    assert!(
        text.contains("did not all start") && text.contains("service-stop shop web"),
        "{text}"
    );
    assert_eq!(env.systemd.take().last().unwrap(), "stop tenant-shop.slice");
    let listed = api.list().await.unwrap();
    assert_eq!(listed[0].state, "suspended");
    api.resume("", "shop").await.unwrap();

    // Kept across a restart: a running service is left alone; after a boot (nothing runs) it starts again.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.systemd.take();
    let stop = env.start(uid).await;
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=50 tasks=256"],
        "still running: not started again"
    );
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.systemd.running.lock().unwrap().clear();
    let _stop = env.start(uid).await;
    let api = env.api().await;
    assert_eq!(
        env.systemd.take(),
        ["ensure tenant-shop.slice cpu=50 tasks=256", &start_web]
    );
    assert_eq!(
        services(&api, "shop").await,
        [("web".into(), "active".into())]
    );

    // Stop: stopped and forgotten.
    api.stop_service("", "shop", "web").await.unwrap();
    assert_eq!(env.systemd.take(), ["stop-service tenant-shop-web.service"]);
    assert!(services(&api, "shop").await.is_empty());
    let (k, text) = refused(api.stop_service("", "shop", "web").await);
    assert_eq!(k, "InvalidArgument");
    assert!(text.contains("has no service web"), "{text}");

    // Delete stops it; the purge removes it with the tenant (a new tenant of that name has none).
    api.start_service("", "shop", "api", argv(&["/bin/sleep", "1000"]))
        .await
        .unwrap();
    api.delete("", "shop", "contract ended").await.unwrap();
    assert_eq!(
        services(&api, "shop").await,
        [("api".into(), "inactive".into())]
    );
    let mut purged = false;
    for _ in 0..100 {
        if api.list().await.unwrap().is_empty() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(purged, "purged after the retention");
    api.create("", "shop", "small").await.unwrap();
    assert!(services(&api, "shop").await.is_empty());

    // Audited: starts and stops as tenant.service on <tenant>/<service>, the denied and failed ones too.
    let log = env.audit().await;
    for (actor, target, outcome) in [
        ("root@console", "shop/web", "allowed"),
        ("session", "shop/api", "denied"),
        ("root@console", "shop/bad", "allowed"),
        ("root@console", "shop/bad", "failed"),
        ("root@console", "shop/web", "failed"),
        ("root@console", "shop/api", "allowed"),
    ] {
        assert!(
            log.iter().any(|(a, ac, t, o)| a == actor
                && ac == "tenant.service"
                && t == target
                && o == outcome),
            "{actor} {target} {outcome}: {log:#?}"
        );
    }
}
