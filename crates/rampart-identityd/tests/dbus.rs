//! rampart-identityd in-process on a private bus with the real rampart-auditd and a fake rampart-sshconfd (it
//! records `SetAccount` calls and answers `Keys`/`Status` as told). No root needed: the test's uid stands for
//! root on the console. Cheap argon2 parameters: this checks behaviour; `make bench` measures cost.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_common::guard::{Action, Guard};
use rampart_common::testing::fakes::{fake_ssh, SshState};
use rampart_common::testing::{audit_daemon, PrivateBus};
use rampart_identityd::totp;
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::identity::{IdentityProxy, SETUP_COMPLETE, SETUP_PENDING};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use zbus::message::Header;

const GOOD: &str = "tangerine violin oxide march";

/// A stand-in for any other daemon's guarded method: `Poke(token, permission)` runs the shared guard, which asks
/// identityd about the token over the bus.
struct Poked {
    guard: Guard,
}

#[zbus::interface(name = "org.rampart.Test1")]
impl Poked {
    async fn poke(
        &self,
        #[zbus(header)] header: Header<'_>,
        token: &str,
        permission: &str,
    ) -> Result<String, BusError> {
        let action = Action {
            permission,
            target: "test",
            details: json!({}),
        };
        self.guard
            .run(&header, token, action, |p| async move {
                Ok(p.name().to_owned())
            })
            .await
    }
}

struct Env {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    ssh: Arc<Mutex<SshState>>,
    _conns: Vec<zbus::Connection>,
    _audit: rampart_common::testing::Daemon,
}

fn now() -> u64 {
    rampart_common::clock::now()
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start();
        let audit = audit_daemon(&bus, dir.path()).await;
        let (fake, ssh) = fake_ssh(&bus).await;
        let root = dir.path().join("config");
        std::fs::create_dir_all(root.join("identityd.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("userdb")).unwrap();
        std::fs::write(
            root.join("identityd.d/50-test.toml"),
            format!(
                "database = {:?}\nuserdb_dir = {:?}\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
                 expiry_check_secs = 1\nsite_names = [\"Acme Hosting\"]\n",
                dir.path().join("identity.db"),
                dir.path().join("userdb"),
            ),
        )
        .unwrap();
        let settings = rampart_identityd::settings::load(&[root]).unwrap();
        let builder = bus.builder();
        let uid = nix::unistd::getuid().as_raw();
        tokio::spawn(async move {
            let forever = std::future::pending::<&'static str>();
            if let Err(e) = rampart_identityd::run(builder, settings, Some(uid), forever).await {
                panic!("identityd failed: {}", rampart_common::error::chain(&e));
            }
        });
        // The poke service, a client of identityd like every other daemon.
        let poke_conn = bus.connect().await;
        let guard = Guard::new(&poke_conn).await.unwrap();
        poke_conn
            .object_server()
            .at("/org/rampart/Test1", Poked { guard })
            .await
            .unwrap();
        poke_conn.request_name("org.rampart.Test1").await.unwrap();
        let env = Env {
            dir,
            bus,
            ssh,
            _conns: vec![fake, poke_conn],
            _audit: audit,
        };
        let id = env.identity().await;
        for _ in 0..100 {
            if id.setup_state().await.is_ok() {
                return env;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("identityd did not come up");
    }

    async fn identity(&self) -> IdentityProxy<'static> {
        IdentityProxy::new(&self.bus.connect().await).await.unwrap()
    }

    async fn poke(&self, token: &str, permission: &str) -> Result<String, String> {
        let conn = self.bus.connect().await;
        let reply = conn
            .call_method(
                Some("org.rampart.Test1"),
                "/org/rampart/Test1",
                Some("org.rampart.Test1"),
                "Poke",
                &(token, permission),
            )
            .await;
        match reply {
            Ok(m) => Ok(m.body().deserialize::<String>().unwrap()),
            Err(e) => Err(rampart_interfaces::error::message(&e)),
        }
    }

    async fn audit_actions(&self, action: &str) -> Vec<(String, String, String)> {
        let audit = AuditProxy::new(&self.bus.connect().await).await.unwrap();
        let filters = std::collections::HashMap::from([("action".to_owned(), action.to_owned())]);
        let page = audit.query(filters, 0, 1000, false).await.unwrap();
        page.records
            .into_iter()
            .map(|r| (r.actor, r.target, r.outcome))
            .collect()
    }
}

fn denied(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(text), _) => {
            assert_eq!(name.as_str(), "org.rampart.Error.AccessDenied", "{text}");
            text.clone()
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
}

fn invalid(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(text), _) => {
            assert_eq!(name.as_str(), "org.rampart.Error.InvalidArgument", "{text}");
            text.clone()
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// A code for the step after the last one used, so tests never collide with the replay rule by accident.
fn code(secret: &str, offset: i64) -> String {
    totp::code_at(secret, (now() as i64 + offset) as u64).unwrap()
}

/// Runs the console path of setup for `admin`; returns its TOTP secret and recovery codes.
async fn complete_setup(env: &Env, admin: &str) -> (String, Vec<String>) {
    let id = env.identity().await;
    let token = id.setup_begin_console().await.unwrap();
    let enrolment = id.setup_admin(&token, admin, GOOD).await.unwrap();
    let recovery = id
        .setup_second_factor(&token, &code(&enrolment.secret, -30))
        .await
        .unwrap();
    {
        let mut s = env.ssh.lock().unwrap();
        s.keys.push((admin.into(), "ssh-ed25519 AAAAkey".into()));
        s.port = 40022;
    }
    id.setup_finish(&token).await.unwrap();
    (enrolment.secret, recovery)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_gates_everything_and_closes_the_other_wizard() {
    let env = Env::start().await;
    let id = env.identity().await;
    assert_eq!(id.setup_state().await.unwrap().state, SETUP_PENDING);
    let e = id.login("anyone", GOOD, "192.0.2.1").await.unwrap_err();
    assert!(denied(&e).contains("setup is not complete"));

    // The web path: wrong code refused; the right one works once.
    let code_now = id.setup_code().await.unwrap();
    assert_eq!(code_now.code.len(), 14, "{}", code_now.code);
    assert!(code_now.expires_at >= now() + 1790);
    let e = id
        .setup_begin("WRONG-CODE-HERE", "192.0.2.9")
        .await
        .unwrap_err();
    assert!(denied(&e).contains("wrong or expired setup code"));
    let web = id
        .setup_begin(&code_now.code.to_lowercase(), "192.0.2.9")
        .await
        .unwrap();
    let e = id
        .setup_begin(&code_now.code, "192.0.2.9")
        .await
        .unwrap_err();
    assert!(
        denied(&e).contains("wrong or expired"),
        "a code is single use"
    );
    assert!(id.setup_code().await.unwrap().generation > code_now.generation);
    // Per-source throttling of wrong codes.
    for _ in 0..5 {
        let _ = id.setup_begin("AAAA-BBBB-CCCC", "203.0.113.5").await;
    }
    let e = id
        .setup_begin("AAAA-BBBB-CCCC", "203.0.113.5")
        .await
        .unwrap_err();
    assert!(denied(&e).contains("too many wrong setup codes"));

    // The web wizard's token may do setup things and nothing else.
    assert_eq!(env.poke(&web, "ssh.key-add").await.unwrap(), "setup:web");
    let e = env.poke(&web, "firewall.open").await.unwrap_err();
    assert!(e.contains("does not hold"), "{e}");

    // A weak password and a system user's name are refused with reasons.
    let e = id
        .setup_admin(&web, "carol", "AcmeHosting2026!!")
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("site word"), "{e:?}");
    let e = id.setup_admin(&web, "daemon", GOOD).await.unwrap_err();
    assert!(invalid(&e).contains("reserved") || invalid(&e).contains("system user"));
    assert_eq!(id.session_info(&web).await.unwrap().username, "");
    let web_enrolment = id.setup_admin(&web, "carol", GOOD).await.unwrap();
    let info = id.session_info(&web).await.unwrap();
    assert_eq!(
        (info.username.as_str(), info.role.as_str()),
        ("carol", "setup")
    );
    assert!(web_enrolment
        .uri
        .starts_with("otpauth://totp/Rampart:carol%40"));
    // The proposed administrator exists for NSS already (the SSH login that proves the port uses it)...
    assert!(env.dir.path().join("userdb/carol.user").exists());
    // ...but cannot log in.
    let e = id.login("carol", GOOD, "192.0.2.1").await.unwrap_err();
    assert!(denied(&e).contains("setup is not complete"));

    // The console path finishes first...
    let console = id.setup_begin_console().await.unwrap();
    let e = id.setup_admin(&console, "carol", GOOD).await.unwrap_err();
    assert!(invalid(&e).contains("other wizard"));
    let enrolment = id.setup_admin(&console, "alice", GOOD).await.unwrap();
    let e = id.setup_finish(&console).await.unwrap_err();
    assert!(
        format!("{e:?}").contains("authenticator is not confirmed"),
        "{e:?}"
    );
    let e = id
        .setup_second_factor(&console, "000000")
        .await
        .unwrap_err();
    assert!(denied(&e).contains("wrong code"));
    let recovery = id
        .setup_second_factor(&console, &code(&enrolment.secret, 0))
        .await
        .unwrap();
    assert_eq!(recovery.len(), 10);
    let e = id.setup_finish(&console).await.unwrap_err();
    assert!(format!("{e:?}").contains("no SSH key"), "{e:?}");
    env.ssh
        .lock()
        .unwrap()
        .keys
        .push(("alice".into(), "ssh-ed25519 AAAAkey".into()));
    let e = id.setup_finish(&console).await.unwrap_err();
    assert!(format!("{e:?}").contains("not been moved"), "{e:?}");
    {
        let mut s = env.ssh.lock().unwrap();
        s.moving_to = Some(40022);
    }
    let e = id.setup_finish(&console).await.unwrap_err();
    assert!(format!("{e:?}").contains("not confirmed yet"), "{e:?}");
    {
        let mut s = env.ssh.lock().unwrap();
        s.port = 40022;
        s.moving_to = None;
    }
    let info = id.setup_finish(&console).await.unwrap();
    assert_eq!(
        (
            info.state.as_str(),
            info.completed_via.as_str(),
            info.admin.as_str()
        ),
        (SETUP_COMPLETE, "console", "alice")
    );

    // ...which closes the web wizard: its token is dead, its proposal gone.
    let e = id
        .setup_second_factor(&web, &code(&web_enrolment.secret, 0))
        .await
        .unwrap_err();
    assert!(denied(&e).contains("ended"), "{e:?}");
    let e = env.poke(&web, "ssh.key-add").await.unwrap_err();
    assert!(e.contains("ended"), "{e}");
    assert!(!env.dir.path().join("userdb/carol.user").exists());
    assert!(env.dir.path().join("userdb/alice.user").exists());
    assert!(id.setup_code().await.is_err(), "no setup code after setup");
    assert!(id.setup_begin_console().await.is_err());
    assert!(
        env.dir.path().join("setup-complete").exists(),
        "the marker for the port-80 redirect"
    );

    // Audited: every setup step, the wrong codes as denied.
    let steps = env.audit_actions("identity.setup*").await;
    assert!(
        steps
            .iter()
            .any(|(a, _, o)| a == "setup:console" && o == "allowed"),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|(a, _, o)| a == "setup:web" && o == "denied"),
        "{steps:?}"
    );
    let _ = recovery;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_two_factors_replay_throttle_and_recovery() {
    let env = Env::start().await;
    let (secret, recovery) = complete_setup(&env, "alice").await;
    let id = env.identity().await;

    // Wrong password and unknown user read the same.
    let a = denied(
        &id.login("alice", "wrong password here", "192.0.2.1")
            .await
            .unwrap_err(),
    );
    let b = denied(
        &id.login("nobody-here", GOOD, "192.0.2.1")
            .await
            .unwrap_err(),
    );
    assert_eq!(a, b);

    // The code used to enrol (previous step) is spent; the current one works; then it is a replay.
    let challenge = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    assert!(!challenge.enrol);
    let e = id
        .login_second_factor(&challenge.token, &code(&secret, -30), "192.0.2.1")
        .await
        .unwrap_err();
    assert!(denied(&e).contains("already used"));
    let current = code(&secret, 0);
    let session = id
        .login_second_factor(&challenge.token, &current, "192.0.2.1")
        .await
        .unwrap();
    assert_eq!(
        (session.username.as_str(), session.role.as_str()),
        ("alice", "root")
    );
    assert_eq!(session.token.len(), 43);
    let again = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    let e = id
        .login_second_factor(&again.token, &current, "192.0.2.1")
        .await
        .unwrap_err();
    assert!(
        denied(&e).contains("already used"),
        "a TOTP code is accepted once"
    );
    // The challenge is not a session.
    assert!(env.poke(&again.token, "firewall.open").await.is_err());

    // The session works through any daemon's guard, and is audited as alice.
    assert_eq!(
        env.poke(&session.token, "firewall.open").await.unwrap(),
        "alice"
    );
    assert!(env
        .poke("made-up-token", "firewall.open")
        .await
        .unwrap_err()
        .contains("log in again"));
    let info = id.session_info(&session.token).await.unwrap();
    assert_eq!(info.csrf, session.csrf);
    assert!(info.idle_expires_at <= info.expires_at);

    // A recovery code logs in once.
    let c = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    let s2 = id
        .login_second_factor(&c.token, &recovery[0].to_lowercase(), "192.0.2.1")
        .await
        .unwrap();
    assert_ne!(s2.token, session.token, "a new token at every login");
    let c = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    assert!(id
        .login_second_factor(&c.token, &recovery[0], "192.0.2.1")
        .await
        .is_err());

    // Logout ends the session.
    id.logout(&s2.token).await.unwrap();
    assert!(env.poke(&s2.token, "firewall.open").await.is_err());

    // Throttling: five wrong passwords for alice, then even the right one waits.
    for _ in 0..5 {
        let _ = id.login("alice", "not the password!", "198.51.100.7").await;
    }
    let e = id.login("alice", GOOD, "198.51.100.8").await.unwrap_err();
    assert!(denied(&e).contains("too many failed logins"));
    let logins = env.audit_actions("identity.login").await;
    assert!(
        logins.iter().filter(|(_, _, o)| o == "denied").count() >= 6,
        "{logins:?}"
    );
    assert!(logins
        .iter()
        .any(|(a, _, o)| a == "alice" && o == "allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_roles_enrolment_and_expiry_without_anyone_acting() {
    let env = Env::start().await;
    let (secret, _) = complete_setup(&env, "alice").await;
    let id = env.identity().await;
    let c = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    let admin = id
        .login_second_factor(&c.token, &code(&secret, 0), "192.0.2.1")
        .await
        .unwrap();

    // An auditor that expires in a few seconds; sshconfd is told the same expiry first.
    let expires = now() + 4;
    let e = id
        .create_account(
            &admin.token,
            "dave",
            "auditor",
            "dave-password-2026",
            expires,
        )
        .await
        .unwrap_err();
    assert!(invalid(&e).contains("password"));
    let dave = id
        .create_account(
            &admin.token,
            "dave",
            "auditor",
            "marble quiet lantern sofa",
            expires,
        )
        .await
        .unwrap();
    assert_eq!(
        (dave.role.as_str(), dave.totp_enrolled, dave.expires_at),
        ("auditor", false, expires)
    );
    assert!(env
        .ssh
        .lock()
        .unwrap()
        .set_account
        .contains(&("dave".into(), true, expires)));
    assert!(env.dir.path().join("userdb/dave.user").exists());

    // First login enrols TOTP: a new secret, a code from it, ten recovery codes.
    let c = id
        .login("dave", "marble quiet lantern sofa", "192.0.2.2")
        .await
        .unwrap();
    assert!(c.enrol && !c.enrolment.secret.is_empty());
    let s = id
        .login_second_factor(&c.token, &code(&c.enrolment.secret, 0), "192.0.2.2")
        .await
        .unwrap();
    assert_eq!(s.recovery_codes.len(), 10);
    // An auditor reads, changes nothing.
    assert_eq!(env.poke(&s.token, "audit.read").await.unwrap(), "dave");
    assert!(env
        .poke(&s.token, "firewall.open")
        .await
        .unwrap_err()
        .contains("does not hold"));
    let e = id
        .create_account(&s.token, "eve", "admin", "marble quiet lantern sofa", 0)
        .await
        .unwrap_err();
    assert!(denied(&e).contains("does not hold"));

    // If sshconfd refuses, nothing is created here either.
    env.ssh.lock().unwrap().refuse = true;
    assert!(id
        .create_account(
            &admin.token,
            "frank",
            "admin",
            "marble quiet lantern sofa",
            0
        )
        .await
        .is_err());
    env.ssh.lock().unwrap().refuse = false;
    assert!(!id
        .accounts()
        .await
        .unwrap()
        .iter()
        .any(|a| a.username == "frank"));

    // The last root cannot be disabled.
    let e = id
        .set_disabled(&admin.token, "alice", true)
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("last enabled root"), "{e:?}");

    // Expiry: nobody acts; the session dies and the login is refused, and it is audited.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let e = env.poke(&s.token, "audit.read").await.unwrap_err();
    assert!(e.contains("ended") || e.contains("expired"), "{e}");
    assert!(id
        .login("dave", "marble quiet lantern sofa", "192.0.2.2")
        .await
        .is_err());
    let dave = id
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.username == "dave")
        .unwrap();
    assert!(dave.disabled && dave.disabled_reason == "expired");
    let expired = env.audit_actions("identity.expire").await;
    assert_eq!(
        expired,
        vec![(
            "service:rampart-identityd".into(),
            "dave".into(),
            "allowed".into()
        )]
    );

    // Reset 2FA (alice is root, so she may reset a root account, her own): sessions end, she enrols again.
    let alice = id.reset_second_factor(&admin.token, "alice").await.unwrap();
    assert!(!alice.totp_enrolled && alice.recovery_codes_left == 0);
    assert!(env.poke(&admin.token, "firewall.open").await.is_err());
    let c = id.login("alice", GOOD, "192.0.2.1").await.unwrap();
    assert!(c.enrol);
    assert_eq!(env.audit_actions("identity.2fa-reset").await.len(), 1);
}
