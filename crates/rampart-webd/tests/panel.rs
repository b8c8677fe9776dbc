//! The panel over real HTTPS, as a browser without JavaScript uses it: the web wizard from the setup code to
//! "set up", then a password + TOTP login, the dashboard, account management, and the cross-site defences
//! (Origin, CSRF tokens), cookies and security headers. The real identityd and auditd decide and record; SSH and
//! the firewall are fakes here (tests/nspawn/firstboot runs the real ones).
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_see_other, code, csrf_in, set_cookie, strict_cookie, Panel, GOOD, KEY};
use rampart_webd::http::{CHALLENGE_COOKIE, PRE_CSRF_COOKIE, SESSION_COOKIE, SETUP_COOKIE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_wizard_then_login_dashboard_and_accounts() {
    let p = Panel::start().await;

    // Before setup: every page leads to the wizard; the login does not exist yet.
    let r = p.get("/", &[]).await;
    assert_see_other(&r, "/setup");
    let r = p.get("/login", &[]).await;
    assert_eq!(r.headers()["location"], "/setup");

    // Step 1: the code from the console. A wrong one is refused; so is a form without the CSRF token.
    let r = p.get("/setup", &[]).await;
    assert_eq!(r.status(), 200);
    let (pre, attrs) = set_cookie(&r, PRE_CSRF_COOKIE).unwrap();
    assert!(
        attrs.contains("Secure") && attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict")
    );
    let page = r.text().await.unwrap();
    assert_eq!(csrf_in(&page), pre);
    let cookies = [(PRE_CSRF_COOKIE, pre.as_str())];
    let r = p
        .post_form("/setup", &cookies, &[("code", "XXXX-XXXX-XXXX")])
        .await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = p
        .post_form(
            "/setup",
            &cookies,
            &[("csrf", &pre), ("code", "XXXX-XXXX-XXXX")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("wrong or expired setup code"));
    let console_code = p.identity().await.setup_code().await.unwrap().code;
    let r = p
        .post_form(
            "/setup",
            &cookies,
            &[("csrf", &pre), ("code", &console_code)],
        )
        .await;
    assert_see_other(&r, "/setup/admin");
    let setup = strict_cookie(&r, SETUP_COOKIE);
    let sc = [(SETUP_COOKIE, setup.as_str())];

    // Step 2: the administrator. Weak password and mismatch refused with reasons.
    let page = p.get("/setup/admin", &sc).await.text().await.unwrap();
    let csrf = csrf_in(&page);
    let r = p
        .post_form(
            "/setup/admin",
            &sc,
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", "Company2024!"),
                ("password2", "Company2024!"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("at least 14"));
    let r = p
        .post_form(
            "/setup/admin",
            &sc,
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", GOOD),
                ("password2", "other"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("the two passwords differ"));
    let r = p
        .post_form(
            "/setup/admin",
            &sc,
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", GOOD),
                ("password2", GOOD),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<svg") && page.contains("otpauth://totp/Rampart:alice"),
        "QR and key shown"
    );
    let secret = page
        .split("name=\"secret\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    // Step 3: the authenticator; a wrong code is refused and the same QR shown again.
    let r = p
        .post_form(
            "/setup/totp",
            &sc,
            &[("csrf", &csrf), ("code", "000000"), ("secret", &secret)],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(&secret[..4]));
    let r = p
        .post_form(
            "/setup/totp",
            &sc,
            &[("csrf", &csrf), ("code", &code(&secret, 0))],
        )
        .await;
    let page = r.text().await.unwrap();
    assert_eq!(page.matches("<li>").count(), 10, "ten recovery codes");

    // Step 4: SSH key and port. Port 22 refused; a bad key refused; then the move starts with the setup token.
    let page = p.get("/setup/ssh", &sc).await.text().await.unwrap();
    assert!(page.contains("alice"));
    let r = p
        .post_form(
            "/setup/ssh",
            &sc,
            &[("csrf", &csrf), ("key", KEY), ("port", "22")],
        )
        .await;
    assert!(r.text().await.unwrap().contains("port 22 is refused"));
    let r = p
        .post_form(
            "/setup/ssh",
            &sc,
            &[("csrf", &csrf), ("key", "not a key"), ("port", "40022")],
        )
        .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not an OpenSSH public key"));
    let r = p
        .post_form(
            "/setup/ssh",
            &sc,
            &[("csrf", &csrf), ("key", KEY), ("port", "40022")],
        )
        .await;
    assert_eq!(r.headers()["location"], "/setup/confirm");
    {
        let s = p.ssh.lock().unwrap();
        assert_eq!(s.moving_to, Some(40022));
        assert!(
            s.tokens.iter().all(|t| *t == setup),
            "sshconfd got the wizard's token"
        );
    }
    let page = p.get("/setup/confirm", &sc).await.text().await.unwrap();
    assert!(page.contains("ssh -p 40022 alice@127.0.0.1"), "{page}");

    // Step 5: finishing before the SSH login arrived is refused; after it, setup completes.
    let r = p.post_form("/setup/confirm", &sc, &[("csrf", &csrf)]).await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("no public-key login has arrived"));
    p.ssh.lock().unwrap().login_seen = true;
    let r = p.post_form("/setup/confirm", &sc, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 200);
    assert!(
        set_cookie(&r, SETUP_COOKIE).is_some_and(|(v, a)| v.is_empty() && a.contains("Max-Age=0"))
    );
    assert!(r.text().await.unwrap().contains("This machine is set up"));
    let state = p.identity().await.setup_state().await.unwrap();
    assert_eq!(
        (state.state.as_str(), state.completed_via.as_str()),
        ("complete", "web")
    );
    // The wizard is closed: its pages send people to the login.
    assert_eq!(
        p.get("/setup/admin", &sc).await.headers()["location"],
        "/login"
    );

    // Login: password, then TOTP (the enrolment code's step is spent: wait for the next step's code).
    let r = p.get("/login", &[]).await;
    let (pre, _) = set_cookie(&r, PRE_CSRF_COOKIE).unwrap();
    let cookies = [(PRE_CSRF_COOKIE, pre.as_str())];
    let r = p
        .post_form(
            "/login",
            &cookies,
            &[
                ("csrf", &pre),
                ("username", "alice"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("wrong user name or password"));
    let r = p
        .post_form(
            "/login",
            &cookies,
            &[("csrf", &pre), ("username", "alice"), ("password", GOOD)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (challenge, _) = set_cookie(&r, CHALLENGE_COOKIE).unwrap();
    let cc = [
        (PRE_CSRF_COOKIE, pre.as_str()),
        (CHALLENGE_COOKIE, challenge.as_str()),
    ];
    let r = p
        .post_form(
            "/login/2fa",
            &cc,
            &[("csrf", &pre), ("code", &code(&secret, 0))],
        )
        .await;
    assert_eq!(r.status(), 403, "the enrolment's code is spent: a replay");
    assert!(r.text().await.unwrap().contains("already used"));
    let r = p
        .post_form(
            "/login/2fa",
            &cc,
            &[("csrf", &pre), ("code", &code(&secret, 30))],
        )
        .await;
    assert_see_other(&r, "/dashboard");
    let session = strict_cookie(&r, SESSION_COOKIE);
    let s = [(SESSION_COOKIE, session.as_str())];

    // The dashboard, with strict headers.
    let r = p.get("/dashboard", &s).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Dashboard") && page.contains("identity.login"),
        "recent audit shown"
    );
    assert!(!page.contains("<script"), "no script on any page");
    let csrf = csrf_in(&page);

    // Creating an account: refused without the CSRF token and from another origin; works with both right.
    let fields = [
        ("username", "dave"),
        ("role", "auditor"),
        ("password", "marble quiet lantern sofa"),
        ("expires", ""),
    ];
    let r = p.post_form("/accounts", &s, &fields).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let mut with_csrf = vec![("csrf", csrf.as_str())];
    with_csrf.extend_from_slice(&fields);
    let r = p
        .client
        .post(p.url("/accounts"))
        .header("origin", "https://evil.example")
        .header("cookie", format!("{SESSION_COOKIE}={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&username=dave&role=auditor&password=marble+quiet+lantern+sofa"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-origin");
    let r = p.post_form("/accounts", &s, &with_csrf).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("created dave (auditor)"));
    assert!(p
        .identity()
        .await
        .accounts()
        .await
        .unwrap()
        .iter()
        .any(|a| a.username == "dave"));

    // Logout ends the session for good.
    let r = p.post_form("/logout", &s, &[("csrf", &csrf)]).await;
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(
        p.get("/dashboard", &s).await.headers()["location"],
        "/login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_login_roles_and_account_lifecycle() {
    let p = Panel::start().await;
    let (status, body) = p
        .api(
            "POST",
            "/api/v1/login",
            "",
            serde_json::json!({"username": "x", "password": "y"}),
        )
        .await;
    assert_eq!(status, 409, "no login before setup: {body}");
    let secret = p.complete_setup("alice").await;
    let (admin, _) = p.api_login("alice", GOOD, &secret).await;

    let (status, me) = p
        .api("GET", "/api/v1/session", &admin, serde_json::Value::Null)
        .await;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
    let (status, _) = p
        .api(
            "GET",
            "/api/v1/audit?limit=5",
            &admin,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200);

    // An auditor, time-limited: reads, cannot change anything.
    let (status, a) = p
        .api(
            "POST",
            "/api/v1/accounts",
            &admin,
            serde_json::json!({"username": "dave", "role": "auditor", "password": "marble quiet lantern sofa",
                               "expires_at": common::now() + 3600}),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let (dave, _) = p.api_login("dave", "marble quiet lantern sofa", "").await;
    let (status, _) = p
        .api("GET", "/api/v1/accounts", &dave, serde_json::Value::Null)
        .await;
    assert_eq!(status, 200);
    let (status, e) = p
        .api(
            "POST",
            "/api/v1/accounts/alice/disable",
            &dave,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 403, "{e}");
    // Weak passwords refused with the reason; bad JSON refused.
    let (status, e) = p
        .api(
            "POST",
            "/api/v1/accounts",
            &admin,
            serde_json::json!({"username": "eve", "role": "admin", "password": "Rampart2026!!!!!"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("site word"), "{e}");
    let r = p
        .client
        .post(p.url("/api/v1/accounts"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"username\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Disable: dave's session dies at once.
    let (status, a) = p
        .api(
            "POST",
            "/api/v1/accounts/dave/disable",
            &admin,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!((status, a["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = p
        .api("GET", "/api/v1/session", &dave, serde_json::Value::Null)
        .await;
    assert_eq!(status, 401);
    // A too-large body is refused before anything reads it.
    let r = p
        .client
        .post(p.url("/api/v1/login"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
