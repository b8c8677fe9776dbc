//! The page shell every HTML page shares: the top bar with navigation and the signed-in user, notices, the
//! setup step list, and the error page.

use hyper::StatusCode;
use maud::{html, Markup, DOCTYPE};
use rampart_interfaces::identity::{role_allows, Principal};

use crate::http::{self, Response};

/// The stylesheet (served at /static/style.css).
pub const CSS: &str = include_str!("../../assets/style.css");

/// A page for a signed-in user: top bar, navigation by what the role may see, a logout button.
pub fn page(title: &str, here: &str, who: Option<(&Principal, &str)>, body: Markup) -> Markup {
    let nav: &[(&str, &str, &str)] = &[
        ("Dashboard", "/dashboard", ""),
        ("Accounts", "/accounts", "identity.read"),
        ("Password", "/password", "identity.password"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rampart" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/" { "Rampart" span { "appliance panel" } }
                    @if let Some((p, csrf)) = who {
                        nav {
                            @for (name, href, perm) in nav {
                                @if perm.is_empty() || role_allows(&p.role, perm) {
                                    a.here[*href == here] href=(href) { (name) }
                                }
                            }
                        }
                        div.who {
                            span { (p.name) " · " (p.role) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                (body)
                footer { "Rampart · no script runs on this page" }
            }
        }
    }
}

/// A page without a session (login, setup).
pub fn bare(title: &str, body: Markup) -> Markup {
    page(title, "", None, body)
}

pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class=(format!("notice {kind}")) role="status" { (text) } }
}

/// The wizard's steps, `at` being the current one (1-based).
pub fn steps(at: usize) -> Markup {
    let names = [
        "Setup code",
        "Administrator",
        "Authenticator",
        "Recovery codes",
        "SSH",
        "Confirm",
    ];
    html! {
        ol.steps aria-label="Setup steps" {
            @for (i, name) in names.iter().enumerate() {
                li class=(if i + 1 < at { "done" } else if i + 1 == at { "here" } else { "" }) { (i + 1) ". " (name) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    http::html(
        status,
        bare(
            title,
            html! {
                main.narrow {
                    div.card {
                        h1 { (title) }
                        (notice("error", message))
                        a href="/" { "Back to the start" }
                    }
                }
            },
        ),
    )
}

/// Unix seconds as `2026-12-01 22:40 UTC`, `—` for 0.
pub fn when(secs: u64) -> String {
    if secs == 0 {
        return "—".to_owned();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!(
        "{} UTC",
        s.trim_end_matches('Z')
            .replace('T', " ")
            .get(..16)
            .unwrap_or(&s)
    )
}
