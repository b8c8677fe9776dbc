//! The dashboard: the daemons' health, recent audit records, firewall rules with their expiry, SSH keys with
//! their last use, and accounts — each section only for roles that may read it. A section whose daemon does not
//! answer says so instead of taking the page down.

use std::collections::HashMap;

use hyper::StatusCode;
use maud::{html, Markup};
use rampart_interfaces::identity::role_allows;
use rampart_interfaces::ssh::UNUSED_AFTER_SECS;

use super::layout::{page, when};
use crate::app::{App, Ctx};
use crate::backend::{call, Fail};
use crate::http::{self, Response};

fn section<T>(title: &str, r: Result<T, Fail>, body: impl FnOnce(T) -> Markup) -> Markup {
    html! {
        div.card {
            h2 { (title) }
            @match r {
                Ok(v) => (body(v)),
                Err(f) => p.muted { "Unavailable: " (f.message()) },
            }
        }
    }
}

fn badge(ok: bool, warn: bool, text: &str) -> Markup {
    let class = if ok {
        "badge ok"
    } else if warn {
        "badge warn"
    } else {
        "badge bad"
    };
    html! { span class=(class) { (text) } }
}

pub async fn show(app: &App, cx: Ctx) -> Response {
    let Some(p) = cx.principal().cloned() else {
        return http::redirect("/login");
    };
    let may = |perm: &str| role_allows(&p.role, perm);
    let now = rampart_common::clock::now();
    let b = &app.backend;

    let health = section("Health", b.health().await, |units| {
        html! {
            table {
                tr { th { "Service" } th { "State" } th { "" } }
                @for u in &units {
                    tr {
                        td.mono { (u.unit) }
                        td { (badge(u.active == "active", u.active == "activating", &u.active)) " " span.muted { (u.sub) } }
                        td.muted { (u.description) }
                    }
                }
            }
        }
    });

    let audit = if may("audit.read") {
        let r = call(b.audit.query(HashMap::new(), 0, 12, true)).await;
        section("Recent audit", r, |page| {
            html! {
                table {
                    tr { th { "#" } th { "Time" } th { "Who" } th { "Action" } th { "Target" } th { "Outcome" } }
                    @for rec in &page.records {
                        tr {
                            td.muted { (rec.seq) }
                            td { (when(u64::try_from(rec.time_us / 1_000_000).unwrap_or(0))) }
                            td { (rec.actor) }
                            td.mono { (rec.action) }
                            td.mono { (rec.target) }
                            td { (badge(rec.outcome == "allowed", false, &rec.outcome)) }
                        }
                    }
                }
            }
        })
    } else {
        html! {}
    };

    let firewall = if may("firewall.read") {
        let r = match (
            call(b.firewall.status()).await,
            call(b.firewall.list()).await,
        ) {
            (Ok(s), Ok(rules)) => Ok((s, rules)),
            (Err(f), _) | (_, Err(f)) => Err(f),
        };
        section("Firewall", r, |(status, rules)| {
            let ports: Vec<String> = status.ssh.ports.iter().map(u16::to_string).collect();
            html! {
                p { "SSH on " strong { (ports.join(", ")) } " · HTTPS 443 and 80 · " (status.bans) " active bans · everything else dropped" }
                @if rules.is_empty() {
                    p.muted { "No other openings." }
                } @else {
                    table {
                        tr { th { "Opening" } th { "From" } th { "By" } th { "Expires" } th { "Why" } }
                        @for r in &rules {
                            @let soon = r.expires_at != 0 && r.expires_at < now + 86_400;
                            tr {
                                td.mono { (r.protocol) "/" (r.ports) }
                                td.mono { @if r.sources.is_empty() { "anywhere" } @else { (r.sources.join(", ")) } }
                                td { (r.added_by) }
                                td {
                                    @if r.expires_at == 0 { (badge(false, true, "permanent")) }
                                    @else { (when(r.expires_at)) @if soon { " " (badge(false, true, "within a day")) } }
                                }
                                td.muted { (r.comment) (r.permanent_reason) }
                            }
                        }
                    }
                }
            }
        })
    } else {
        html! {}
    };

    let keys = if may("ssh.read") {
        section("SSH keys", call(b.ssh.keys("")).await, |keys| {
            html! {
                @if keys.is_empty() { p.muted { "No keys." } } @else {
                    table {
                        tr { th { "User" } th { "Key" } th { "Last used" } th { "" } }
                        @for k in &keys {
                            @let since = if k.last_used == 0 { k.added_at } else { k.last_used };
                            tr {
                                td { (k.user) }
                                td.key { (k.algorithm) " " (k.fingerprint) }
                                td { (when(k.last_used)) }
                                td { @if now.saturating_sub(since) >= UNUSED_AFTER_SECS { (badge(false, true, "unused 90+ days")) } }
                            }
                        }
                    }
                }
            }
        })
    } else {
        html! {}
    };

    let accounts = if may("identity.read") {
        section("Accounts", call(b.identity.accounts()).await, |accounts| {
            html! {
                table {
                    tr { th { "User" } th { "Role" } th { "State" } th { "Expires" } th { "Last login" } }
                    @for a in &accounts {
                        tr {
                            td { (a.username) }
                            td { (a.role) }
                            td { (badge(!a.disabled, false, if a.disabled { "disabled" } else { "enabled" })) }
                            td { (when(a.expires_at)) }
                            td { (when(a.last_login)) }
                        }
                    }
                }
                p { a href="/accounts" { "Manage accounts" } }
            }
        })
    } else {
        html! {}
    };

    let body = html! {
        main {
            h1 { "Dashboard" }
            p.lead { (app.host) }
            div.grid { (health) (firewall) }
            (audit)
            div.grid { (keys) (accounts) }
        }
    };
    http::html(
        StatusCode::OK,
        page("Dashboard", "/dashboard", Some((&p, &cx.csrf)), body),
    )
}
