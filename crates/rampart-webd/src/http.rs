//! Requests and responses as the handlers see them: a request already read (body bounded), cookies, forms and
//! JSON parsed on demand, and responses with the panel's security headers.

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type Response = hyper::Response<Full<Bytes>>;

/// The session cookie: `__Host-` so it is bound to this origin, HTTPS-only, and has no Domain.
pub const SESSION_COOKIE: &str = "__Host-rampart-session";
/// The web wizard's setup token.
pub const SETUP_COOKIE: &str = "__Host-rampart-setup";
/// Between the password and the second factor.
pub const CHALLENGE_COOKIE: &str = "__Host-rampart-login";
/// Anti-CSRF token for forms shown before any session exists (double submit).
pub const PRE_CSRF_COOKIE: &str = "__Host-rampart-csrf";

/// A request, read.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client: the TCP peer, or the last hop of `X-Forwarded-For` when the peer is a trusted proxy.
    pub client: IpAddr,
    /// Values of `{}` segments of the matched route, in order.
    pub params: Vec<String>,
}

impl Req {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    }

    /// `Authorization: Bearer <token>` (API clients).
    pub fn bearer(&self) -> Option<&str> {
        self.header(header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The JSON API (`/api/…`) answers in JSON, everything else in HTML.
    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }

    pub fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }

    /// An `application/x-www-form-urlencoded` body (empty for anything else).
    pub fn form(&self) -> Form {
        let is_form = self
            .header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let fields = if is_form {
            form_urlencoded::parse(&self.body).into_owned().collect()
        } else {
            HashMap::new()
        };
        Form(fields)
    }

    /// A JSON body; the error is the status to answer with and what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, (StatusCode, String)> {
        let is_json = self
            .header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("application/json"));
        if !is_json {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send Content-Type: application/json".to_owned(),
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the JSON body is invalid: {e}"),
            )
        })
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Fields of a submitted form.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

fn base(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn html(status: StatusCode, markup: maud::Markup) -> Response {
    base(status, "text/html; charset=utf-8", markup.into_string())
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => base(status, "application/json", body),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

pub fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    base(status, content_type, body)
}

/// 303 See Other to a path on this site (never to a Host-derived absolute URL).
pub fn redirect(location: &str) -> Response {
    let mut r = base(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Sets a `__Host-` cookie: Secure, HttpOnly, SameSite=Strict, Path=/; `max_age` 0 deletes it.
pub fn set_cookie(r: &mut Response, name: &str, value: &str, max_age: u64) {
    let cookie =
        format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub fn clear_cookie(r: &mut Response, name: &str) {
    set_cookie(r, name, "", 0);
}

/// The headers every response carries. No script runs at all (`script-src` is not allowed, not even 'self');
/// styles only from our own stylesheet; nothing may frame the panel; no referrer leaves it (`same-origin`, not
/// `no-referrer`: with that, Chromium sends `Origin: null` on the panel's own form posts).
pub fn secure(r: &mut Response, sensitive: bool) {
    let h = r.headers_mut();
    let pairs: [(header::HeaderName, &'static str); 7] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in pairs {
        h.insert(name, HeaderValue::from_static(value));
    }
    if sensitive {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], body: &str) -> Req {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Req {
            method: Method::POST,
            path: "/api/v1/x".into(),
            query: "a=1&b=two%20words".into(),
            headers: map,
            body: Bytes::from(body.to_owned()),
            client: "192.0.2.1".parse().unwrap(),
            params: vec![],
        }
    }

    #[test]
    fn cookies_forms_queries_and_bearer() {
        let r = req(
            &[
                ("cookie", "a=1; __Host-rampart-session=tok; empty="),
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", "Bearer abc"),
            ],
            "user=alice&note=a+b%26c",
        );
        assert_eq!(r.cookie(SESSION_COOKIE), Some("tok"));
        assert_eq!(r.cookie("empty"), None);
        assert_eq!(r.cookie("missing"), None);
        assert_eq!(r.form().get("note"), "a b&c");
        assert_eq!(r.form().get("nope"), "");
        assert_eq!(r.query_param("b").as_deref(), Some("two words"));
        assert_eq!(r.bearer(), Some("abc"));
        assert!(r.is_api() && r.mutating());
    }

    #[test]
    fn json_needs_its_content_type_and_valid_syntax() {
        #[derive(serde::Deserialize)]
        struct X {
            #[allow(dead_code)]
            a: u32,
        }
        assert!(req(&[("content-type", "text/plain")], r#"{"a":1}"#)
            .json::<X>()
            .is_err());
        assert!(req(&[("content-type", "application/json")], r#"{"a":"#)
            .json::<X>()
            .is_err());
        assert!(req(&[("content-type", "application/json")], r#"{"a":1}"#)
            .json::<X>()
            .is_ok());
    }

    #[test]
    fn cookies_are_host_bound_and_strict() {
        let mut r = redirect("/login");
        set_cookie(&mut r, SESSION_COOKIE, "t", 60);
        let c = r
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(
            c,
            "__Host-rampart-session=t; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        secure(&mut r, true);
        let csp = r
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
        assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
    }
}
