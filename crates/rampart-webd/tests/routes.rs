//! Every route × every method, called without a session, token or cookie, before and after setup: each is denied
//! (401/403, a redirect to the login or setup page, 405 or 409) except the explicit allowlist of public routes
//! below, which must then not fail. The table is `rampart_webd::routes::ROUTES` itself, so a route added there
//! is covered here without anyone remembering to; a route made public must be added to the allowlist on purpose.
#![allow(clippy::unwrap_used)]

mod common;

use common::Panel;
use rampart_webd::routes::{Access, ROUTES};

/// (method, path) that answer without a session: the stylesheet, the API description, the entry pages, the
/// forms that start a login or the setup, and the setup state. POSTs among them still refuse (no CSRF token, a
/// wrong code, wrong credentials): they are "public" in that they reach their handler.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/static/style.css"),
    ("GET", "/openapi.json"),
    ("GET", "/setup"),
    ("POST", "/setup"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/api/v1/setup"),
    ("POST", "/api/v1/setup/begin"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/login/second-factor"),
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[test]
fn the_allowlist_is_exactly_the_public_routes() {
    let public: Vec<(&str, &str)> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        public, PUBLIC,
        "a route became public (or stopped being): update PUBLIC on purpose"
    );
}

async fn sweep(panel: &Panel, phase: &str) -> usize {
    let mut checked = 0;
    for route in ROUTES {
        let path = route.path.replace("{}", "alice");
        for method in METHODS {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let resp = panel
                .client
                .request(m, panel.url(&path))
                .header("origin", panel.origin())
                .header("content-type", "application/json")
                .body(if *method == "GET" || *method == "HEAD" {
                    ""
                } else {
                    "{}"
                })
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // Another route may answer this method on the same path (GET /setup beside POST /setup).
            let as_route = if *method == "HEAD" { "GET" } else { method };
            let allowed = PUBLIC.contains(&(as_route, route.path));
            let what = format!("{phase}: {method} {path} -> {status} {location}");
            if allowed {
                assert!(status < 500, "{what}: a public route failed");
            } else {
                let denied = matches!(status, 401 | 403 | 405 | 409)
                    || (status == 303 && (location == "/login" || location == "/setup"));
                assert!(denied, "{what}: not denied without a session");
            }
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_method_without_a_session_is_denied() {
    let panel = Panel::start().await;
    let before = sweep(&panel, "before setup").await;
    panel.complete_setup("alice").await;
    let after = sweep(&panel, "after setup").await;
    assert_eq!(before, ROUTES.len() * METHODS.len());
    assert_eq!(before, after);
    // And a made-up token is no better than none.
    let (status, body) = panel
        .api(
            "GET",
            "/api/v1/accounts",
            "made-up",
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = panel
        .api("GET", "/api/v1/nope", "", serde_json::Value::Null)
        .await;
    assert_eq!(status, 404);
}
