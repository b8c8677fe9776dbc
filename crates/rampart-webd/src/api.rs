//! The JSON API under `/api/v1`, described by `assets/openapi.json` (served at `/openapi.json`). The same calls
//! as the pages; authenticate with `Authorization: Bearer <session token>` (from `POST /api/v1/login` and
//! `/login/second-factor`), or with the session cookie plus `X-CSRF-Token`.

use std::collections::HashMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, Auth, Ctx};
use crate::authlog;
use crate::backend::{call, Fail};
use crate::http::{self, Response};
use crate::pages::setup;
use crate::routes::H;

pub const OPENAPI: &str = include_str!("../assets/openapi.json");

fn fail(f: &Fail) -> Response {
    http::json_error(f.status(), f.message())
}

fn ok<T: serde::Serialize>(r: Result<T, Fail>) -> Response {
    match r {
        Ok(v) => http::json(StatusCode::OK, &v),
        Err(f) => fail(&f),
    }
}

macro_rules! body {
    ($cx:expr, $t:ty) => {
        match $cx.req.json::<$t>() {
            Ok(v) => v,
            Err((status, message)) => return http::json_error(status, &message),
        }
    };
}

#[derive(Deserialize)]
struct Code {
    code: String,
}
#[derive(Deserialize)]
struct Admin {
    username: String,
    password: String,
}
#[derive(Deserialize)]
struct SshSetup {
    key: String,
    port: u16,
}
#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}
#[derive(Deserialize)]
struct SecondFactor {
    challenge: String,
    code: String,
}
#[derive(Deserialize)]
struct NewAccount {
    username: String,
    role: String,
    password: String,
    #[serde(default)]
    expires_at: u64,
}
#[derive(Deserialize)]
struct Expiry {
    expires_at: u64,
}

fn param(cx: &Ctx) -> &str {
    cx.req.params.first().map_or("", String::as_str)
}

pub async fn dispatch(app: &App, h: H, cx: Ctx) -> Response {
    let id = &app.backend.identity;
    let source = cx.req.client.to_string();
    let t = cx.token().to_owned();
    match h {
        H::ApiSetupState => ok(call(id.setup_state()).await),
        H::ApiSetupBegin => {
            let b = body!(cx, Code);
            match call(id.setup_begin(&b.code, &source)).await {
                Ok(token) => http::json(StatusCode::OK, &json!({ "token": token })),
                Err(f) => {
                    authlog::failed(cx.req.client, "setup", "bad-setup-code");
                    fail(&f)
                }
            }
        }
        H::ApiSetupAdmin => {
            let b = body!(cx, Admin);
            ok(call(id.setup_admin(&t, &b.username, &b.password)).await)
        }
        H::ApiSetupSecondFactor => {
            let b = body!(cx, Code);
            ok(call(id.setup_second_factor(&t, &b.code))
                .await
                .map(|codes| json!({ "recovery_codes": codes })))
        }
        H::ApiSetupSsh => {
            let b = body!(cx, SshSetup);
            let admin = match &cx.auth {
                Auth::Setup { admin, .. } if !admin.is_empty() => admin.clone(),
                _ => {
                    return http::json_error(
                        StatusCode::CONFLICT,
                        "propose the administrator first",
                    )
                }
            };
            if b.port == 22 {
                return http::json_error(
                    StatusCode::BAD_REQUEST,
                    "port 22 is refused; choose another",
                );
            }
            if let Err((m, status)) = setup::add_key(app, &t, &admin, &b.key).await {
                return http::json_error(status, &m);
            }
            if let Err((m, status)) = setup::move_ssh(app, &t, b.port).await {
                return http::json_error(status, &m);
            }
            ok(call(app.backend.ssh.status()).await)
        }
        H::ApiSetupFinish => match setup::finish(app, &t).await {
            Ok(admin) => http::json(
                StatusCode::OK,
                &json!({ "state": "complete", "admin": admin }),
            ),
            Err((m, status)) => http::json_error(status, &m),
        },
        H::ApiLogin => {
            let b = body!(cx, Login);
            match call(id.login(&b.username, &b.password, &source)).await {
                Ok(c) => http::json(StatusCode::OK, &c),
                Err(f) => {
                    authlog::failed(cx.req.client, &b.username, "bad-password");
                    fail(&f)
                }
            }
        }
        H::ApiSecondFactor => {
            let b = body!(cx, SecondFactor);
            match call(id.login_second_factor(&b.challenge, &b.code, &source)).await {
                Ok(s) => {
                    authlog::opened(cx.req.client, &s.username, &s.id);
                    http::json(StatusCode::OK, &s)
                }
                Err(f) => {
                    authlog::failed(cx.req.client, "", "bad-second-factor");
                    fail(&f)
                }
            }
        }
        H::ApiLogout => {
            let r = call(id.logout(&t)).await;
            if let (Ok(()), Some(p)) = (&r, cx.principal()) {
                authlog::closed(cx.req.client, &p.name, &p.session_id);
            }
            ok(r.map(|()| json!({ "ok": true })))
        }
        H::ApiSession => ok(call(id.session_info(&t)).await),
        H::ApiHealth => ok(app.backend.health().await),
        H::ApiAudit => {
            let limit = cx
                .req
                .query_param("limit")
                .and_then(|l| l.parse::<u32>().ok())
                .unwrap_or(50)
                .clamp(1, 1000);
            let mut filters = HashMap::new();
            for key in ["action", "actor", "target", "outcome", "since", "until"] {
                if let Some(v) = cx.req.query_param(key) {
                    filters.insert(key.to_owned(), v);
                }
            }
            ok(call(app.backend.audit.query(filters, 0, limit, true)).await)
        }
        H::ApiFirewallRules => ok(call(app.backend.firewall.list()).await),
        H::ApiSshKeys => ok(call(app.backend.ssh.keys("")).await),
        H::ApiAccounts => ok(call(id.accounts()).await),
        H::ApiAccountCreate => {
            let b = body!(cx, NewAccount);
            let r =
                call(id.create_account(&t, &b.username, &b.role, &b.password, b.expires_at)).await;
            match r {
                Ok(a) => http::json(StatusCode::CREATED, &a),
                Err(f) => fail(&f),
            }
        }
        H::ApiAccountDisable => ok(call(id.set_disabled(&t, param(&cx), true)).await),
        H::ApiAccountEnable => ok(call(id.set_disabled(&t, param(&cx), false)).await),
        H::ApiAccountReset2fa => ok(call(id.reset_second_factor(&t, param(&cx))).await),
        H::ApiAccountExpiry => {
            let b = body!(cx, Expiry);
            ok(call(id.set_expiry(&t, param(&cx), b.expires_at)).await)
        }
        other => http::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("no API handler for {other:?} (a bug)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::ROUTES;

    #[test]
    fn openapi_describes_every_api_route() {
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for r in ROUTES.iter().filter(|r| r.path.starts_with("/api/")) {
            // The table's one parameter is an account name.
            let path = r.path.replace("{}", "{name}");
            let op = &doc["paths"][path.as_str()][r.method.to_lowercase()];
            assert!(op.is_object(), "openapi.json lacks {} {}", r.method, path);
            assert!(
                op["summary"].is_string(),
                "{} {} has no summary",
                r.method,
                path
            );
        }
    }
}
