//! The panel on a private bus: the real rampart-auditd (a process) and rampart-identityd (in this process),
//! fake sshconfd and firewalld, and rampart-webd serving HTTPS on 127.0.0.1:0 with a fresh certificate. No root
//! needed: the test's uid stands for root on the console. Cheap argon2 parameters (behaviour, not cost).
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_common::testing::fakes::{fake_ssh, serve, FakeFirewall, SshState};
use rampart_common::testing::{audit_daemon, Daemon, PrivateBus};
use rampart_interfaces::identity::IdentityProxy;

pub const GOOD: &str = "tangerine violin oxide march";
pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests alice@laptop";

pub struct Panel {
    pub dir: tempfile::TempDir,
    pub bus: PrivateBus,
    pub ssh: Arc<Mutex<SshState>>,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _audit: Daemon,
    _conns: Vec<zbus::Connection>,
}

pub fn now() -> u64 {
    rampart_common::clock::now()
}

impl Panel {
    pub async fn start() -> Panel {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start();
        let audit = audit_daemon(&bus, dir.path()).await;
        let (ssh_conn, ssh) = fake_ssh(&bus).await;
        let fw_conn = serve(
            &bus,
            rampart_interfaces::firewall::BUS_NAME,
            rampart_interfaces::firewall::OBJECT_PATH,
            FakeFirewall::default(),
        )
        .await;

        let root = dir.path().join("config");
        std::fs::create_dir_all(root.join("identityd.d")).unwrap();
        std::fs::create_dir_all(root.join("webd.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(
            root.join("identityd.d/50-test.toml"),
            format!(
                "database = {:?}\nuserdb_dir = \"\"\nargon2_memory_kib = 1024\nargon2_iterations = 1\n",
                dir.path().join("identity.db")
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("webd.d/50-test.toml"),
            format!(
                "state_dir = {:?}\nrequests_per_second = 100000\nrequest_burst = 100000\nauth_attempts_per_minute = 10000\n",
                dir.path().join("web")
            ),
        )
        .unwrap();
        let id_settings = rampart_identityd::settings::load(std::slice::from_ref(&root)).unwrap();
        let builder = bus.builder();
        let uid = nix::unistd::getuid().as_raw();
        tokio::spawn(async move {
            let forever = std::future::pending::<&'static str>();
            rampart_identityd::run(builder, id_settings, Some(uid), forever)
                .await
                .unwrap();
        });

        let settings = rampart_webd::settings::load(&[root]).unwrap();
        rampart_webd::tls::ensure_cert(&settings.state_dir, &["localhost".into()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let web_conn = bus.connect().await;
        let conn = web_conn.clone();
        tokio::spawn(async move {
            rampart_webd::run(settings, &conn, listener, std::future::pending())
                .await
                .unwrap();
        });
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let panel = Panel {
            dir,
            bus,
            ssh,
            addr,
            client,
            _audit: audit,
            _conns: vec![ssh_conn, fw_conn, web_conn],
        };
        for _ in 0..100 {
            if panel.identity().await.setup_state().await.is_ok()
                && panel.get("/api/v1/setup", &[]).await.status() == 200
            {
                return panel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the panel did not come up");
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub async fn identity(&self) -> IdentityProxy<'static> {
        IdentityProxy::new(&self.bus.connect().await).await.unwrap()
    }

    pub async fn get(&self, path: &str, cookies: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if !cookies.is_empty() {
            r = r.header("cookie", cookie_header(cookies));
        }
        r.send().await.unwrap()
    }

    /// A form POST from this site (Origin set), with cookies.
    pub async fn post_form(
        &self,
        path: &str,
        cookies: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut r = self
            .client
            .post(self.url(path))
            .header("origin", self.origin())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if !cookies.is_empty() {
            r = r.header("cookie", cookie_header(cookies));
        }
        r.send().await.unwrap()
    }

    /// An API call with JSON and an optional bearer token.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.client.request(m, self.url(path));
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        if !body.is_null() {
            r = r.json(&body);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    /// Completes the setup through the console's D-Bus path (not the web): for tests of what comes after.
    pub async fn complete_setup(&self, admin: &str) -> String {
        let id = self.identity().await;
        let token = id.setup_begin_console().await.unwrap();
        let e = id.setup_admin(&token, admin, GOOD).await.unwrap();
        id.setup_second_factor(&token, &code(&e.secret, -30))
            .await
            .unwrap();
        {
            let mut s = self.ssh.lock().unwrap();
            s.keys.push((admin.into(), KEY.into()));
            s.port = 40022;
        }
        id.setup_finish(&token).await.unwrap();
        e.secret
    }

    /// Logs `user` in over the API; returns the session token and CSRF token.
    pub async fn api_login(&self, user: &str, password: &str, secret: &str) -> (String, String) {
        let (s, c) = self
            .api(
                "POST",
                "/api/v1/login",
                "",
                serde_json::json!({ "username": user, "password": password }),
            )
            .await;
        assert_eq!(s, 200, "{c}");
        let code = if c["enrol"].as_bool().unwrap() {
            self::code(c["enrolment"]["secret"].as_str().unwrap(), 0)
        } else {
            self::code(secret, 0)
        };
        let (s, session) = self
            .api(
                "POST",
                "/api/v1/login/second-factor",
                "",
                serde_json::json!({ "challenge": c["token"], "code": code }),
            )
            .await;
        assert_eq!(s, 200, "{session}");
        (
            session["token"].as_str().unwrap().to_owned(),
            session["csrf"].as_str().unwrap().to_owned(),
        )
    }
}

pub fn code(secret: &str, offset: i64) -> String {
    rampart_identityd::totp::code_at(secret, (now() as i64 + offset) as u64).unwrap()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn cookie_header(cookies: &[(&str, &str)]) -> String {
    cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of cookie `name` set by `resp`, with its attributes.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            (kv.split_once('=').unwrap().1.to_owned(), attrs.to_owned())
        })
}

/// Asserts a `303 See Other` to `to`: how the panel answers a form it accepted.
pub fn assert_see_other(resp: &reqwest::Response, to: &str) {
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok());
    assert_eq!((resp.status().as_u16(), location), (303, Some(to)));
}

/// The value of cookie `name`, asserting the attributes every panel cookie must carry.
pub fn strict_cookie(resp: &reqwest::Response, name: &str) -> String {
    let (value, attrs) = set_cookie(resp, name).unwrap_or_else(|| panic!("no {name} cookie"));
    assert!(
        attrs.contains("Secure; HttpOnly; SameSite=Strict"),
        "{name}: {attrs}"
    );
    value
}

/// The value of the hidden `csrf` field in a page.
pub fn csrf_in(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}
