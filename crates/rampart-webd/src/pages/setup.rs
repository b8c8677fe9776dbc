//! The web wizard: the one-time code from the console, the administrator, the authenticator, the recovery codes,
//! an SSH key and port, and the proof that SSH works on that port. Every step is a call to identityd or sshconfd
//! with the wizard's setup token; they enforce the rules (password policy, port 22 refused, a login required on
//! the new port), the pages explain them.

use hyper::StatusCode;
use maud::{html, Markup};
use rampart_interfaces::ssh::{PORT_AWAITING_LOGIN, PORT_IDLE};

use super::layout::{bare, notice, steps};
use super::{enrolment, layout};
use crate::app::{App, Auth, Ctx};
use crate::authlog;
use crate::backend::call;
use crate::http::{self, Response, SETUP_COOKIE};

fn page(title: &str, step: usize, body: Markup) -> Markup {
    bare(
        title,
        html! {
            main.narrow {
                h1 { "Set up this machine" }
                (steps(step))
                div.card { (body) }
            }
        },
    )
}

fn csrf_field(cx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(cx.csrf); }
}

fn admin_of(cx: &Ctx) -> &str {
    match &cx.auth {
        Auth::Setup { admin, .. } => admin,
        _ => "",
    }
}

fn code_page(cx: &Ctx, error: Option<&str>) -> Markup {
    page(
        "Setup",
        1,
        html! {
            h2 { "Setup code" }
            p { "Type the code shown on the machine's console (the screen of the VM or server). It works once and for 30 minutes." }
            p.muted { "Before you go on, check that the certificate fingerprint your browser shows for this page matches the one on the console." }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action="/setup" {
                (csrf_field(cx))
                label for="code" { "Setup code" }
                input.code #code type="text" name="code" autocomplete="off" autocapitalize="characters" placeholder="XXXX-XXXX-XXXX" required autofocus;
                button type="submit" { "Continue" }
            }
        },
    )
}

pub async fn code_form(app: &App, cx: Ctx) -> Response {
    if let Some(token) = cx.req.cookie(SETUP_COOKIE) {
        if call(app.backend.identity.session_info(token)).await.is_ok() {
            return http::redirect("/setup/admin");
        }
    }
    http::html(StatusCode::OK, code_page(&cx, None))
}

pub async fn code(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    let source = cx.req.client.to_string();
    match call(app.backend.identity.setup_begin(form.get("code"), &source)).await {
        Ok(token) => {
            let mut r = http::redirect("/setup/admin");
            http::set_cookie(&mut r, SETUP_COOKIE, &token, 3600);
            r
        }
        Err(f) => {
            authlog::failed(cx.req.client, "setup", "bad-setup-code");
            http::html(f.status(), code_page(&cx, Some(f.message())))
        }
    }
}

fn admin_page(cx: &Ctx, error: Option<&str>, name: &str) -> Markup {
    page(
        "Administrator",
        2,
        html! {
            h2 { "The administrator" }
            p { "This account manages the machine in the panel and logs in over SSH. It gets the root role." }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action="/setup/admin" {
                (csrf_field(cx))
                label for="username" { "User name " small { "(lower-case letters, digits, - and _)" } }
                input #username type="text" name="username" value=(name) autocomplete="username" required autofocus;
                label for="password" { "Password " small { "(at least 14 characters; not built from this company's or site's name)" } }
                input #password type="password" name="password" autocomplete="new-password" required;
                label for="password2" { "Password again" }
                input #password2 type="password" name="password2" autocomplete="new-password" required;
                button type="submit" { "Continue" }
            }
        },
    )
}

pub async fn admin_form(_app: &App, cx: Ctx) -> Response {
    let name = admin_of(&cx).to_owned();
    http::html(StatusCode::OK, admin_page(&cx, None, &name))
}

fn totp_page(cx: &Ctx, error: Option<&str>, secret: &str, uri: &str) -> Markup {
    page(
        "Authenticator",
        3,
        html! {
            h2 { "Two-factor authentication" }
            p { "Every login needs a code from an authenticator app as well as the password. There is no way to turn this off." }
            (enrolment(secret, uri))
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action="/setup/totp" {
                (csrf_field(cx))
                input type="hidden" name="secret" value=(secret);
                input type="hidden" name="uri" value=(uri);
                label for="code" { "The 6-digit code the app shows now" }
                input.code #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus;
                button type="submit" { "Confirm" }
            }
        },
    )
}

pub async fn admin(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    let (name, pw) = (form.get("username"), form.get("password"));
    if pw != form.get("password2") {
        return http::html(
            StatusCode::BAD_REQUEST,
            admin_page(&cx, Some("the two passwords differ"), name),
        );
    }
    match call(app.backend.identity.setup_admin(cx.token(), name, pw)).await {
        Ok(e) => http::html(StatusCode::OK, totp_page(&cx, None, &e.secret, &e.uri)),
        Err(f) => http::html(f.status(), admin_page(&cx, Some(f.message()), name)),
    }
}

pub async fn totp(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    match call(
        app.backend
            .identity
            .setup_second_factor(cx.token(), form.get("code")),
    )
    .await
    {
        Ok(codes) => http::html(
            StatusCode::OK,
            page(
                "Recovery codes",
                4,
                html! {
                    h2 { "Recovery codes" }
                    (notice("warn", "These are shown once. Store them somewhere safe, away from the authenticator: each one replaces a lost authenticator for one login, or resets 2FA on the console."))
                    ol.codes { @for c in &codes { li { (c) } } }
                    a.button href="/setup/ssh" { "I have stored them" }
                },
            ),
        ),
        Err(f) => http::html(
            f.status(),
            totp_page(&cx, Some(f.message()), form.get("secret"), form.get("uri")),
        ),
    }
}

fn ssh_page(cx: &Ctx, error: Option<&str>, key: &str, port: &str) -> Markup {
    page(
        "SSH",
        5,
        html! {
            h2 { "SSH access for " (admin_of(cx)) }
            p { "SSH accepts keys only (no passwords, no root) and moves off port 22, where every scanner knocks." }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action="/setup/ssh" {
                (csrf_field(cx))
                label for="key" { "Your public key " small { "(the one line of ~/.ssh/id_ed25519.pub)" } }
                textarea #key name="key" required placeholder="ssh-ed25519 AAAA… you@laptop" { (key) }
                label for="port" { "SSH port " small { "(1024–65535, not 22)" } }
                input #port type="text" name="port" inputmode="numeric" value=(port) required;
                button type="submit" { "Continue" }
            }
        },
    )
}

pub async fn ssh_form(_app: &App, cx: Ctx) -> Response {
    if admin_of(&cx).is_empty() {
        return http::redirect("/setup/admin");
    }
    let port = rampart_common::net::suggest_ssh_port().to_string();
    http::html(StatusCode::OK, ssh_page(&cx, None, "", &port))
}

pub async fn ssh(app: &App, cx: Ctx) -> Response {
    let form = cx.req.form();
    let (key, port_text) = (
        form.get("key").trim().to_owned(),
        form.get("port").trim().to_owned(),
    );
    let admin = admin_of(&cx).to_owned();
    if admin.is_empty() {
        return http::redirect("/setup/admin");
    }
    let fail = |m: &str, status| http::html(status, ssh_page(&cx, Some(m), &key, &port_text));
    let Ok(port) = port_text.parse::<u16>() else {
        return fail(
            "the port must be a number from 1024 to 65535",
            StatusCode::BAD_REQUEST,
        );
    };
    if port == 22 {
        return fail(
            "port 22 is refused: it is where every scanner knocks; choose another",
            StatusCode::BAD_REQUEST,
        );
    }
    if let Err(e) = add_key(app, cx.token(), &admin, &key).await {
        return fail(&e.0, e.1);
    }
    if let Err(e) = move_ssh(app, cx.token(), port).await {
        return fail(&e.0, e.1);
    }
    http::redirect("/setup/confirm")
}

/// Stores the key (a key already stored for this administrator is fine: the step may be repeated).
pub async fn add_key(
    app: &App,
    token: &str,
    admin: &str,
    key: &str,
) -> Result<(), (String, StatusCode)> {
    let keys = call(app.backend.ssh.keys(admin))
        .await
        .map_err(|f| (f.message().to_owned(), f.status()))?;
    match call(app.backend.ssh.add_key(token, admin, key, "", 0)).await {
        Ok(_) => Ok(()),
        Err(f) if !keys.is_empty() && f.message().contains("already") => Ok(()),
        Err(f) => Err((f.message().to_owned(), f.status())),
    }
}

/// Starts moving SSH to `port` unless that is already under way or done.
pub async fn move_ssh(app: &App, token: &str, port: u16) -> Result<(), (String, StatusCode)> {
    let status = call(app.backend.ssh.status())
        .await
        .map_err(|f| (f.message().to_owned(), f.status()))?;
    let done = status.port == port && status.change.state == PORT_IDLE;
    let under_way = status.change.state == PORT_AWAITING_LOGIN && status.change.new_port == port;
    if done || under_way {
        return Ok(());
    }
    if status.change.state == PORT_AWAITING_LOGIN {
        let _ = call(app.backend.ssh.cancel_port(token)).await;
    }
    call(app.backend.ssh.set_port(token, port))
        .await
        .map(|_| ())
        .map_err(|f| (f.message().to_owned(), f.status()))
}

fn host_for_ssh(cx: &Ctx) -> String {
    // Shown back to the person who typed it into the browser: the address they reach this machine at.
    let host = cx.req.header(hyper::header::HOST).unwrap_or("this-machine");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    host.trim_matches(|c| c == '[' || c == ']').to_owned()
}

fn confirm_page(cx: &Ctx, error: Option<&str>, port: u16, deadline: u64) -> Markup {
    let admin = admin_of(cx);
    page(
        "Confirm SSH",
        6,
        html! {
            h2 { "Prove that SSH works" }
            p { "SSH now listens on port " strong { (port) } " as well. From your own computer, log in once with your key:" }
            pre { "ssh -p " (port) " " (admin) "@" (host_for_ssh(cx)) }
            p.muted {
                "Until that login arrives, nothing is final: without it the change reverts on its own"
                @if deadline > 0 { " at " (layout::when(deadline)) }
                ", and port 22 stays as it was."
            }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action="/setup/confirm" {
                (csrf_field(cx))
                button type="submit" { "I have logged in — finish the setup" }
            }
        },
    )
}

pub async fn confirm_form(app: &App, cx: Ctx) -> Response {
    match call(app.backend.ssh.status()).await {
        Ok(s) if s.change.state == PORT_AWAITING_LOGIN => http::html(
            StatusCode::OK,
            confirm_page(&cx, None, s.change.new_port, s.change.deadline),
        ),
        Ok(s) if s.port != 0 => http::html(StatusCode::OK, confirm_page(&cx, None, s.port, 0)),
        Ok(_) => http::redirect("/setup/ssh"),
        Err(f) => crate::app::deny(&cx.req, f.status(), f.message()),
    }
}

/// Confirms the port move (sshconfd checks the login arrived) and completes the setup.
pub async fn finish(app: &App, token: &str) -> Result<String, (String, StatusCode)> {
    let status = call(app.backend.ssh.status())
        .await
        .map_err(|f| (f.message().to_owned(), f.status()))?;
    if status.change.state == PORT_AWAITING_LOGIN {
        call(app.backend.ssh.confirm_port(token))
            .await
            .map_err(|f| (f.message().to_owned(), f.status()))?;
    }
    call(app.backend.identity.setup_finish(token))
        .await
        .map(|info| info.admin)
        .map_err(|f| (f.message().to_owned(), f.status()))
}

pub async fn confirm(app: &App, cx: Ctx) -> Response {
    match finish(app, cx.token()).await {
        Ok(admin) => {
            let mut r = http::html(
                StatusCode::OK,
                page(
                    "Done",
                    7,
                    html! {
                        h2 { "This machine is set up" }
                        (notice("ok", "The administrator, 2FA and key-only SSH on its own port are in place. The setup code and the other wizard no longer work."))
                        p { "Log in as " strong { (admin) } " with your password and a code from the authenticator." }
                        a.button href="/login" { "Log in" }
                    },
                ),
            );
            http::clear_cookie(&mut r, SETUP_COOKIE);
            r
        }
        Err((m, status)) => {
            let s = call(app.backend.ssh.status()).await.ok();
            let (port, deadline) = s.map_or((0, 0), |s| {
                (s.change.new_port.max(s.port), s.change.deadline)
            });
            http::html(status, confirm_page(&cx, Some(&m), port, deadline))
        }
    }
}
