//! The panel's HTML pages, rendered on the server (maud escapes every value), usable without JavaScript.

pub mod accounts;
pub mod dashboard;
pub mod layout;
pub mod login;
pub mod setup;

use maud::{html, Markup, PreEscaped};
use qrcode::render::svg;
use qrcode::QrCode;

use crate::app::{App, Ctx};
use crate::http::{self, Response, SESSION_COOKIE};

/// `/`: wherever this visitor belongs now.
pub async fn index(app: &App, cx: Ctx) -> Response {
    match app.setup_complete().await {
        Ok(false) => http::redirect("/setup"),
        Ok(true) if cx.req.cookie(SESSION_COOKIE).is_some() => http::redirect("/dashboard"),
        Ok(true) => http::redirect("/login"),
        Err(f) => crate::app::deny(&cx.req, f.status(), f.message()),
    }
}

/// A QR code of `text` as inline SVG (drawn by the qrcode crate from our own data: no markup from outside).
pub fn qr_svg(text: &str) -> Markup {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The XML declaration is not allowed inside HTML.
            let svg = svg
                .split_once("?>")
                .map_or(svg.as_str(), |(_, rest)| rest)
                .to_owned();
            PreEscaped(svg)
        }
        Err(_) => html! { p.muted { "(no QR code: type the key below into the app)" } },
    }
}

/// The enrolment block: QR code, the key in text, and what to do.
pub fn enrolment(secret: &str, uri: &str) -> Markup {
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    html! {
        div.qr {
            (qr_svg(uri))
            div {
                p { "Scan the code with an authenticator app (Aegis, FreeOTP, Google Authenticator, 1Password…), or type this key:" }
                p.secret { (grouped.join(" ")) }
                p.muted { "TOTP, SHA-1, 6 digits, 30 seconds." }
            }
        }
    }
}

/// Parses an expiry as typed into a form: empty or `never` → 0, a date/time (UTC) or a duration from now.
pub fn parse_expiry(text: &str, now: u64) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() || t == "never" {
        return Ok(0);
    }
    // <input type=datetime-local> sends "2026-12-31T23:59" (no seconds).
    let full = if t.len() == 16 && t.as_bytes().get(10) == Some(&b'T') {
        format!("{t}:00")
    } else {
        t.to_owned()
    };
    if let Ok(at) = humantime::parse_rfc3339_weak(&full) {
        return at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| format!("{t:?} is before 1970"));
    }
    humantime::parse_duration(t)
        .map(|d| now.saturating_add(d.as_secs()))
        .map_err(|_| {
            format!("{t:?} is not a date and time (2026-12-31T23:59) or a duration (30days)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("", 100), Ok(0));
        assert_eq!(parse_expiry("never", 100), Ok(0));
        assert_eq!(parse_expiry("2h", 100), Ok(7300));
        assert_eq!(parse_expiry("1970-01-02T00:00", 100), Ok(86_400));
        assert!(parse_expiry("soon", 100).is_err());
    }

    #[test]
    fn qr_is_inline_svg() {
        let svg = qr_svg("otpauth://totp/Rampart:a%40b?secret=ABC&issuer=Rampart").into_string();
        assert!(
            svg.trim_start().starts_with("<svg") && !svg.contains("<?xml"),
            "{}",
            &svg[..60]
        );
    }
}
