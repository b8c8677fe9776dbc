//! Accounts: the list, creating one (optionally time-limited), disabling, re-enabling, setting an expiry,
//! resetting 2FA; and changing one's own password. identityd authorizes and audits each change with the
//! caller's session token; these pages only collect the input and show the outcome.

use hyper::StatusCode;
use maud::{html, Markup};
use rampart_interfaces::identity::{role_allows, Principal, ACCOUNT_ROLES};

use super::layout::{notice, page, when};
use super::parse_expiry;
use crate::app::{App, Ctx};
use crate::backend::{call, Fail};
use crate::http::{self, Response};

/// What a small form on the accounts page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Disable,
    Enable,
    Reset2fa,
    Expiry,
}

fn who(cx: &Ctx) -> Option<Principal> {
    cx.principal().cloned()
}

async fn list_page(app: &App, cx: &Ctx, p: &Principal, message: Option<(&str, &str)>) -> Markup {
    let accounts = call(app.backend.identity.accounts()).await;
    let may = |perm: &str| role_allows(&p.role, perm);
    let csrf = cx.csrf.as_str();
    let small = |action: &str, name: &str, label: &str, danger: bool| {
        html! {
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="username" value=(name);
                button.small.quiet[!danger].danger[danger] type="submit" { (label) }
            }
        }
    };
    let body = html! {
        main {
            h1 { "Accounts" }
            @if let Some((kind, text)) = message { (notice(kind, text)) }
            div.card {
                @match &accounts {
                    Err(f) => p.muted { "Unavailable: " (f.message()) },
                    Ok(list) => table {
                        tr { th { "User" } th { "Role" } th { "State" } th { "Expires" } th { "2FA" } th { "Last login" } th { "" } }
                        @for a in list {
                            tr {
                                td { (a.username) }
                                td { (a.role) }
                                td {
                                    @if a.disabled { span.badge.bad { "disabled" } " " span.muted { (a.disabled_reason) } }
                                    @else { span.badge.ok { "enabled" } }
                                }
                                td { (when(a.expires_at)) }
                                td {
                                    @if a.totp_enrolled { "yes · " (a.recovery_codes_left) " recovery codes" }
                                    @else { span.badge.warn { "enrols at next login" } }
                                }
                                td { (when(a.last_login)) }
                                td.actions {
                                    @if may("identity.account-disable") {
                                        @if a.disabled { (small("/accounts/enable", &a.username, "Enable", false)) }
                                        @else { (small("/accounts/disable", &a.username, "Disable", true)) }
                                    }
                                    " "
                                    @if may("identity.2fa-reset") && a.totp_enrolled {
                                        (small("/accounts/reset-2fa", &a.username, "Reset 2FA", false))
                                    }
                                    @if may("identity.account-expiry") {
                                        br;
                                        form.expiry method="post" action="/accounts/expiry" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="username" value=(a.username);
                                            input type="text" name="expires" placeholder="30days, 2026-12-31T23:59, never" aria-label="New expiry";
                                            button.small.quiet type="submit" { "Set expiry" }
                                        }
                                    }
                                }
                            }
                        }
                    },
                }
            }
            @if may("identity.account-create") {
                div.card {
                    h2 { "New account" }
                    p.muted { "The account sets up its authenticator at its first login. Time-limit accounts for contractors: they stop working on their own, SSH included." }
                    form method="post" action="/accounts" {
                        input type="hidden" name="csrf" value=(csrf);
                        div.grid {
                            div {
                                label for="username" { "User name" }
                                input #username type="text" name="username" required;
                            }
                            div {
                                label for="role" { "Role" }
                                select #role name="role" {
                                    @for r in ACCOUNT_ROLES {
                                        @if *r != "root" || may("identity.grant-root") {
                                            option value=(r) selected[*r == "admin"] { (r) }
                                        }
                                    }
                                }
                            }
                            div {
                                label for="password" { "Initial password " small { "(14+ characters)" } }
                                input #password type="password" name="password" autocomplete="new-password" required;
                            }
                            div {
                                label for="expires" { "Expires " small { "(UTC; empty: never)" } }
                                input #expires type="datetime-local" name="expires";
                            }
                        }
                        button type="submit" { "Create account" }
                    }
                }
            }
        }
    };
    page("Accounts", "/accounts", Some((p, csrf)), body)
}

pub async fn list(app: &App, cx: Ctx) -> Response {
    let Some(p) = who(&cx) else {
        return http::redirect("/login");
    };
    http::html(StatusCode::OK, list_page(app, &cx, &p, None).await)
}

async fn outcome(app: &App, cx: &Ctx, p: &Principal, r: Result<String, Fail>) -> Response {
    match r {
        Ok(text) => http::html(
            StatusCode::OK,
            list_page(app, cx, p, Some(("ok", &text))).await,
        ),
        Err(f) => http::html(
            f.status(),
            list_page(app, cx, p, Some(("error", f.message()))).await,
        ),
    }
}

pub async fn create(app: &App, cx: Ctx) -> Response {
    let Some(p) = who(&cx) else {
        return http::redirect("/login");
    };
    let form = cx.req.form();
    let now = rampart_common::clock::now();
    let r = match parse_expiry(form.get("expires"), now) {
        Err(e) => Err(Fail::Invalid(e)),
        Ok(expires) => call(app.backend.identity.create_account(
            cx.token(),
            form.get("username"),
            form.get("role"),
            form.get("password"),
            expires,
        ))
        .await
        .map(|a| {
            format!(
                "created {} ({}); it sets up 2FA at its first login",
                a.username, a.role
            )
        }),
    };
    outcome(app, &cx, &p, r).await
}

pub async fn act(app: &App, cx: Ctx, act: Act) -> Response {
    let Some(p) = who(&cx) else {
        return http::redirect("/login");
    };
    let form = cx.req.form();
    let name = form.get("username");
    let id = &app.backend.identity;
    let t = cx.token();
    let r = match act {
        Act::Disable => call(id.set_disabled(t, name, true)).await.map(|a| {
            format!(
                "{} is disabled; its sessions ended and its SSH keys stopped working",
                a.username
            )
        }),
        Act::Enable => call(id.set_disabled(t, name, false))
            .await
            .map(|a| format!("{} is enabled again", a.username)),
        Act::Reset2fa => call(id.reset_second_factor(t, name)).await.map(|a| {
            format!(
                "{}'s 2FA is reset; it sets up a new authenticator at its next login",
                a.username
            )
        }),
        Act::Expiry => match parse_expiry(form.get("expires"), rampart_common::clock::now()) {
            Err(e) => Err(Fail::Invalid(e)),
            Ok(at) => call(id.set_expiry(t, name, at))
                .await
                .map(|a| format!("{} now expires: {}", a.username, when(a.expires_at))),
        },
    };
    // Resetting one's own 2FA ends one's own session too.
    if act == Act::Reset2fa && name == p.name && r.is_ok() {
        return http::redirect("/login");
    }
    outcome(app, &cx, &p, r).await
}

fn password_page(cx: &Ctx, p: &Principal, message: Option<(&str, &str)>) -> Markup {
    page(
        "Password",
        "/password",
        Some((p, &cx.csrf)),
        html! {
            main.narrow {
                div.card {
                    h1 { "Change your password" }
                    @if let Some((kind, text)) = message { (notice(kind, text)) }
                    form method="post" action="/password" {
                        input type="hidden" name="csrf" value=(cx.csrf);
                        label for="old" { "Current password" }
                        input #old type="password" name="old" autocomplete="current-password" required;
                        label for="new" { "New password " small { "(14+ characters)" } }
                        input #new type="password" name="new" autocomplete="new-password" required;
                        label for="new2" { "New password again" }
                        input #new2 type="password" name="new2" autocomplete="new-password" required;
                        button type="submit" { "Change password" }
                    }
                }
            }
        },
    )
}

pub async fn password_form(_app: &App, cx: Ctx) -> Response {
    let Some(p) = who(&cx) else {
        return http::redirect("/login");
    };
    http::html(StatusCode::OK, password_page(&cx, &p, None))
}

pub async fn password(app: &App, cx: Ctx) -> Response {
    let Some(p) = who(&cx) else {
        return http::redirect("/login");
    };
    let form = cx.req.form();
    if form.get("new") != form.get("new2") {
        return http::html(
            StatusCode::BAD_REQUEST,
            password_page(&cx, &p, Some(("error", "the two new passwords differ"))),
        );
    }
    match call(
        app.backend
            .identity
            .change_password(cx.token(), form.get("old"), form.get("new")),
    )
    .await
    {
        Ok(()) => http::html(
            StatusCode::OK,
            password_page(
                &cx,
                &p,
                Some(("ok", "password changed; your other sessions were ended")),
            ),
        ),
        Err(f) => http::html(
            f.status(),
            password_page(&cx, &p, Some(("error", f.message()))),
        ),
    }
}
