//! Logging in (password, then a TOTP or recovery code) and out. identityd decides; webd logs each step in the
//! fields rampart-guardd bans from, and keeps the tokens in `__Host-` cookies.

use hyper::StatusCode;
use maud::{html, Markup};

use super::enrolment;
use super::layout::{bare, notice};
use crate::app::{App, Ctx};
use crate::authlog;
use crate::backend::{call, Fail};
use crate::http::{self, Response, CHALLENGE_COOKIE, SESSION_COOKIE};

fn login_page(cx: &Ctx, error: Option<&str>, name: &str) -> Markup {
    bare(
        "Log in",
        html! {
            main.narrow {
                div.card {
                    h1 { "Log in" }
                    @if let Some(e) = error { (notice("error", e)) }
                    form method="post" action="/login" {
                        input type="hidden" name="csrf" value=(cx.csrf);
                        label for="username" { "User name" }
                        input #username type="text" name="username" value=(name) autocomplete="username" required autofocus;
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password" required;
                        button type="submit" { "Continue" }
                    }
                }
            }
        },
    )
}

fn second_factor_page(cx: &Ctx, error: Option<&str>, secret: &str, uri: &str) -> Markup {
    let enrol = !secret.is_empty();
    bare(
        "Second factor",
        html! {
            main.narrow {
                div.card {
                    h1 { "Second factor" }
                    @if enrol {
                        p { "This account has no authenticator yet (new account, or its 2FA was reset). Set one up now:" }
                        (enrolment(secret, uri))
                    } @else {
                        p { "Type the 6-digit code from your authenticator app, or one of your recovery codes." }
                    }
                    @if let Some(e) = error { (notice("error", e)) }
                    form method="post" action="/login/2fa" {
                        input type="hidden" name="csrf" value=(cx.csrf);
                        input type="hidden" name="secret" value=(secret);
                        input type="hidden" name="uri" value=(uri);
                        label for="code" { "Code" }
                        input.code #code type="text" name="code" autocomplete="one-time-code" required autofocus;
                        button type="submit" { "Log in" }
                    }
                }
            }
        },
    )
}

pub async fn form(_app: &App, cx: Ctx) -> Response {
    http::html(StatusCode::OK, login_page(&cx, None, ""))
}

pub async fn password(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    let (name, pw) = (form.get("username"), form.get("password"));
    let source = cx.req.client.to_string();
    match call(app.backend.identity.login(name, pw, &source)).await {
        Ok(c) => {
            let mut r = http::html(
                StatusCode::OK,
                second_factor_page(&cx, None, &c.enrolment.secret, &c.enrolment.uri),
            );
            http::set_cookie(&mut r, CHALLENGE_COOKIE, &c.token, 300);
            r
        }
        Err(f) => {
            authlog::failed(cx.req.client, name, "bad-password");
            http::html(status_of(&f), login_page(&cx, Some(f.message()), name))
        }
    }
}

/// Refusals of a login step are 403 unless a daemon is down.
fn status_of(f: &Fail) -> StatusCode {
    match f {
        Fail::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::FORBIDDEN,
    }
}

pub async fn second_factor(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    let source = cx.req.client.to_string();
    match call(
        app.backend
            .identity
            .login_second_factor(cx.token(), form.get("code"), &source),
    )
    .await
    {
        Ok(s) => {
            authlog::opened(cx.req.client, &s.username, &s.id);
            let now = rampart_common::clock::now();
            let mut r = if s.recovery_codes.is_empty() {
                http::redirect("/dashboard")
            } else {
                http::html(
                    StatusCode::OK,
                    bare(
                        "Recovery codes",
                        html! {
                            main.narrow {
                                div.card {
                                    h1 { "Recovery codes" }
                                    (notice("warn", "Shown once. Each replaces a lost authenticator for one login. Store them away from the authenticator."))
                                    ol.codes { @for c in &s.recovery_codes { li { (c) } } }
                                    a.button href="/dashboard" { "I have stored them" }
                                }
                            }
                        },
                    ),
                )
            };
            http::clear_cookie(&mut r, CHALLENGE_COOKIE);
            http::set_cookie(
                &mut r,
                SESSION_COOKIE,
                &s.token,
                s.expires_at.saturating_sub(now),
            );
            r
        }
        Err(f) => {
            authlog::failed(cx.req.client, "", "bad-second-factor");
            if f.message().contains("password again") {
                let mut r = http::html(
                    StatusCode::FORBIDDEN,
                    login_page(&cx, Some(f.message()), ""),
                );
                http::clear_cookie(&mut r, CHALLENGE_COOKIE);
                return r;
            }
            http::html(
                status_of(&f),
                second_factor_page(&cx, Some(f.message()), form.get("secret"), form.get("uri")),
            )
        }
    }
}

pub async fn logout(app: &App, cx: Ctx) -> Response {
    let _ = call(app.backend.identity.logout(cx.token())).await;
    if let Some(p) = cx.principal() {
        authlog::closed(cx.req.client, &p.name, &p.session_id);
    }
    let mut r = http::redirect("/login");
    http::clear_cookie(&mut r, SESSION_COOKIE);
    r
}
