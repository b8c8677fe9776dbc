//! One request, start to finish: rate limits, route lookup, the setup phase, who is calling (session, setup
//! token, login challenge), cross-site checks, the handler, and the security headers on whatever comes back.
//!
//! **Cross-site requests.** Every mutating request must carry an `Origin` equal to `https://<Host>` when it
//! carries one at all, and must not be `Sec-Fetch-Site: cross-site`. Forms authenticated by a cookie also carry a
//! CSRF token: the session's own (from identityd) once there is a session, or a double-submit cookie before. API
//! clients that send `Authorization: Bearer` need no CSRF token (a browser never adds that header by itself);
//! public API calls need a JSON body, which a cross-site form cannot send without a CORS preflight we never allow.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hyper::header;
use hyper::{Method, StatusCode};
use rampart_interfaces::identity::{Principal, ROLE_SETUP, SETUP_COMPLETE};

use crate::backend::{call, Backend, Fail};
use crate::http::{
    self, Req, Response, CHALLENGE_COOKIE, PRE_CSRF_COOKIE, SESSION_COOKIE, SETUP_COOKIE,
};
use crate::limits::Buckets;
use crate::routes::{self, Access, Found, Phase, Route, H};
use crate::settings::Settings;
use crate::{api, pages};

/// Who is calling, as far as the route needed to know.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Challenge {
        token: String,
    },
    Setup {
        token: String,
        csrf: String,
        /// The administrator this wizard proposed (empty before that step).
        admin: String,
    },
    Session {
        token: String,
        principal: Principal,
    },
}

/// What a handler gets.
#[derive(Debug)]
pub struct Ctx {
    pub req: Req,
    pub auth: Auth,
    /// The anti-CSRF token to put in forms: the session's or setup token's, else the double-submit cookie's.
    pub csrf: String,
    /// Set when the double-submit cookie must be (re)issued with this response.
    pub new_pre_csrf: bool,
}

impl Ctx {
    pub fn token(&self) -> &str {
        match &self.auth {
            Auth::None => "",
            Auth::Challenge { token } | Auth::Setup { token, .. } | Auth::Session { token, .. } => {
                token
            }
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match &self.auth {
            Auth::Session { principal, .. } => Some(principal),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct App {
    pub backend: Backend,
    pub settings: Settings,
    /// This machine's name, for pages and the SSH instructions.
    pub host: String,
    requests: Mutex<Buckets>,
    attempts: Mutex<Buckets>,
    /// Setup never goes back to pending, so once seen complete it is not asked again.
    setup_complete: AtomicBool,
}

fn random_token() -> String {
    let mut buf = [0u8; 32];
    if getrandom::fill(&mut buf).is_err() {
        return String::new(); // an empty CSRF token never matches (see `csrf_ok`)
    }
    data_encoding::BASE64URL_NOPAD.encode(&buf)
}

/// Constant-time equality (`subtle`); empty never matches.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl App {
    pub fn new(backend: Backend, settings: Settings, host: String) -> App {
        let per_minute = f64::from(settings.auth_attempts_per_minute);
        App {
            requests: Mutex::new(Buckets::new(
                f64::from(settings.requests_per_second),
                f64::from(settings.request_burst),
            )),
            attempts: Mutex::new(Buckets::new(per_minute / 60.0, per_minute)),
            setup_complete: AtomicBool::new(false),
            backend,
            settings,
            host,
        }
    }

    pub async fn setup_complete(&self) -> Result<bool, Fail> {
        if self.setup_complete.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let info = call(self.backend.identity.setup_state()).await?;
        let done = info.state == SETUP_COMPLETE;
        self.setup_complete.store(done, Ordering::Relaxed);
        Ok(done)
    }

    /// The whole request → response path.
    pub async fn handle(&self, req: Req) -> Response {
        let sensitive;
        let mut resp = {
            let route = routes::find(req.method.as_str(), &req.path);
            sensitive = !matches!(&route, Found::Route(r, _) if r.access == Access::Public && r.method == "GET");
            self.respond(req, route).await
        };
        http::secure(&mut resp, sensitive);
        resp
    }

    fn limited(&self, bucket: &Mutex<Buckets>, client: IpAddr) -> bool {
        bucket
            .lock()
            .map(|mut b| !b.take(client, Instant::now()))
            .unwrap_or(true)
    }

    async fn respond(&self, mut req: Req, found: Found) -> Response {
        if self.limited(&self.requests, req.client) {
            return deny(
                &req,
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; slow down",
            );
        }
        let (route, params) = match found {
            Found::Route(route, params) => (route, params),
            Found::OtherMethods(allowed) => {
                let mut r = deny(&req, StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                if let Ok(v) = header::HeaderValue::from_str(&allowed.join(", ")) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
                return r;
            }
            Found::NotFound => return deny(&req, StatusCode::NOT_FOUND, "no such page"),
        };
        req.params = params;
        if route.auth_attempt && self.limited(&self.attempts, req.client) {
            return deny(
                &req,
                StatusCode::TOO_MANY_REQUESTS,
                "too many login attempts from this address; wait a minute",
            );
        }
        if req.mutating() {
            if let Err(why) = same_origin(&req) {
                return deny(&req, StatusCode::FORBIDDEN, why);
            }
        }
        let complete = match self.setup_complete().await {
            Ok(c) => c,
            Err(f) => return deny(&req, f.status(), f.message()),
        };
        match (route.phase, complete) {
            (Phase::BeforeSetup, true) => {
                return if req.is_api() {
                    deny(
                        &req,
                        StatusCode::CONFLICT,
                        "setup is already complete; log in",
                    )
                } else {
                    http::redirect("/login")
                };
            }
            (Phase::AfterSetup, false) => {
                return if req.is_api() {
                    deny(&req, StatusCode::CONFLICT, "setup is not complete yet")
                } else {
                    http::redirect("/setup")
                };
            }
            _ => {}
        }
        let cx = match self.authenticate(req, route).await {
            Ok(cx) => cx,
            Err(resp) => return resp,
        };
        let head = cx.req.method == Method::HEAD;
        let new_pre = cx.new_pre_csrf.then(|| cx.csrf.clone());
        let mut resp = self.dispatch(route.handler, cx).await;
        if let Some(token) = new_pre {
            http::set_cookie(&mut resp, PRE_CSRF_COOKIE, &token, 3600);
        }
        if head {
            *resp.body_mut() = http_body_util::Full::new(bytes::Bytes::new());
        }
        resp
    }

    /// Establishes [`Ctx::auth`] as the route's access demands, and checks CSRF for mutating requests.
    async fn authenticate(&self, req: Req, route: &Route) -> Result<Ctx, Response> {
        let mut cx = Ctx {
            auth: Auth::None,
            csrf: String::new(),
            new_pre_csrf: false,
            req,
        };
        let from_cookie = |cx: &Ctx, name: &str| -> Option<(String, bool)> {
            match cx.req.bearer() {
                Some(t) => Some((t.to_owned(), false)),
                None => cx.req.cookie(name).map(|t| (t.to_owned(), true)),
            }
        };
        match route.access {
            Access::Public | Access::Challenge => {
                match cx.req.cookie(PRE_CSRF_COOKIE) {
                    Some(t) if t.len() == 43 => cx.csrf = t.to_owned(),
                    _ => {
                        cx.csrf = random_token();
                        cx.new_pre_csrf = true;
                    }
                }
                if route.access == Access::Challenge {
                    let Some(token) = cx.req.cookie(CHALLENGE_COOKIE).map(str::to_owned) else {
                        return Err(signed_out(
                            &cx.req,
                            "the login has expired; enter your password again",
                        ));
                    };
                    cx.auth = Auth::Challenge { token };
                }
                // Forms before a session: the double-submit token. The API's public calls need a JSON body.
                if cx.req.mutating() && !cx.req.is_api() && !csrf_ok(&cx.req, &cx.csrf) {
                    return Err(deny(&cx.req, StatusCode::FORBIDDEN, CSRF_REFUSED));
                }
            }
            Access::Setup => {
                let Some((token, cookie)) = from_cookie(&cx, SETUP_COOKIE) else {
                    return Err(signed_out(
                        &cx.req,
                        "start the setup with the code shown on the console",
                    ));
                };
                let info = match call(self.backend.identity.session_info(&token)).await {
                    Ok(info) if info.role == ROLE_SETUP => info,
                    Ok(_) => return Err(signed_out(&cx.req, "this is not a setup session")),
                    Err(f) => return Err(failed_auth(&cx.req, &f)),
                };
                if cookie && cx.req.mutating() && !csrf_ok(&cx.req, &info.csrf) {
                    return Err(deny(&cx.req, StatusCode::FORBIDDEN, CSRF_REFUSED));
                }
                cx.csrf = info.csrf;
                cx.auth = Auth::Setup {
                    token,
                    csrf: cx.csrf.clone(),
                    admin: info.username,
                };
            }
            Access::Session | Access::Permission(_) => {
                let Some((token, cookie)) = from_cookie(&cx, SESSION_COOKIE) else {
                    return Err(signed_out(&cx.req, "log in first"));
                };
                // One call for reads with a permission (Authorize); the session's details (its CSRF token) only
                // when they are needed.
                let needs_info = route.access == Access::Session
                    || (cookie && cx.req.mutating())
                    || !cx.req.is_api();
                let info = if needs_info {
                    match call(self.backend.identity.session_info(&token)).await {
                        Ok(info) if info.role != ROLE_SETUP => Some(info),
                        Ok(_) => return Err(signed_out(&cx.req, "log in first")),
                        Err(f) => return Err(failed_auth(&cx.req, &f)),
                    }
                } else {
                    None
                };
                let principal = match (route.access, &info) {
                    (Access::Permission(p), _) => {
                        match call(self.backend.identity.authorize(&token, p)).await {
                            Ok(principal) => principal,
                            // Refused: a live session without the permission is 403, a dead one signs out.
                            Err(f) => {
                                let live = info.is_some()
                                    || call(self.backend.identity.session_info(&token))
                                        .await
                                        .is_ok();
                                return Err(if live {
                                    deny(&cx.req, f.status(), f.message())
                                } else {
                                    failed_auth(&cx.req, &f)
                                });
                            }
                        }
                    }
                    (_, Some(info)) => Principal {
                        name: info.username.clone(),
                        role: info.role.clone(),
                        session_id: info.id.clone(),
                    },
                    (_, None) => return Err(signed_out(&cx.req, "log in first")),
                };
                if let Some(info) = info {
                    if cookie && cx.req.mutating() && !csrf_ok(&cx.req, &info.csrf) {
                        return Err(deny(&cx.req, StatusCode::FORBIDDEN, CSRF_REFUSED));
                    }
                    cx.csrf = info.csrf;
                }
                cx.auth = Auth::Session { token, principal };
            }
        }
        Ok(cx)
    }

    async fn dispatch(&self, h: H, cx: Ctx) -> Response {
        use pages::{accounts, dashboard, login, setup};
        match h {
            H::Index => pages::index(self, cx).await,
            H::Css => http::text(
                StatusCode::OK,
                "text/css; charset=utf-8",
                pages::layout::CSS,
            ),
            H::OpenApi => http::text(StatusCode::OK, "application/json", api::OPENAPI),
            H::SetupCodeForm => setup::code_form(self, cx).await,
            H::SetupCode => setup::code(self, cx).await,
            H::SetupAdminForm => setup::admin_form(self, cx).await,
            H::SetupAdmin => setup::admin(self, cx).await,
            H::SetupTotp => setup::totp(self, cx).await,
            H::SetupSshForm => setup::ssh_form(self, cx).await,
            H::SetupSsh => setup::ssh(self, cx).await,
            H::SetupConfirmForm => setup::confirm_form(self, cx).await,
            H::SetupConfirm => setup::confirm(self, cx).await,
            H::LoginForm => login::form(self, cx).await,
            H::Login => login::password(self, cx).await,
            H::SecondFactor => login::second_factor(self, cx).await,
            H::Logout => login::logout(self, cx).await,
            H::Dashboard => dashboard::show(self, cx).await,
            H::Accounts => accounts::list(self, cx).await,
            H::AccountCreate => accounts::create(self, cx).await,
            H::AccountDisable => accounts::act(self, cx, accounts::Act::Disable).await,
            H::AccountEnable => accounts::act(self, cx, accounts::Act::Enable).await,
            H::AccountReset2fa => accounts::act(self, cx, accounts::Act::Reset2fa).await,
            H::AccountExpiry => accounts::act(self, cx, accounts::Act::Expiry).await,
            H::PasswordForm => accounts::password_form(self, cx).await,
            H::Password => accounts::password(self, cx).await,
            other => api::dispatch(self, other, cx).await,
        }
    }
}

const CSRF_REFUSED: &str =
    "the form was out of date or came from another site; reload the page and try again";

/// The request's CSRF token (form field `csrf` or header `X-CSRF-Token`) equals `expected`.
fn csrf_ok(req: &Req, expected: &str) -> bool {
    let header = req
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let given = header.unwrap_or_else(|| req.form().get("csrf").to_owned());
    same(&given, expected)
}

/// `Origin` (if any) must be this site; `Sec-Fetch-Site` must not say cross-site.
fn same_origin(req: &Req) -> Result<(), &'static str> {
    if req.header(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Err("cross-site requests are refused");
    }
    let Some(origin) = req.header(header::ORIGIN) else {
        return Ok(());
    };
    let host = req.header(header::HOST).unwrap_or("");
    if !host.is_empty() && origin == format!("https://{host}") {
        Ok(())
    } else {
        Err("the request came from another site (Origin does not match); it was refused")
    }
}

/// A refusal in the request's language: JSON for the API, a small page otherwise.
pub fn deny(req: &Req, status: StatusCode, message: &str) -> Response {
    if req.is_api() {
        http::json_error(status, message)
    } else {
        pages::layout::error_page(status, message)
    }
}

/// No (valid) session: 401 for the API, back to the login (or setup) page for people.
fn signed_out(req: &Req, message: &str) -> Response {
    if req.is_api() {
        return http::json_error(StatusCode::UNAUTHORIZED, message);
    }
    let to = if req.path.starts_with("/setup") {
        "/setup"
    } else {
        "/login"
    };
    let mut r = http::redirect(to);
    for cookie in [SESSION_COOKIE, SETUP_COOKIE, CHALLENGE_COOKIE] {
        if req.cookie(cookie).is_some() {
            http::clear_cookie(&mut r, cookie);
        }
    }
    r
}

fn failed_auth(req: &Req, f: &Fail) -> Response {
    match f {
        Fail::Denied(m) => signed_out(req, m),
        other => deny(req, other.status(), other.message()),
    }
}
