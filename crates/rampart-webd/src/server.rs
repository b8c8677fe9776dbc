//! The listeners: HTTPS for the panel (TLS handshake, then HTTP/1.1), and plain HTTP on port 80 that only
//! redirects. Servers take their listener and a shutdown future (tests bind port 0); connections are capped,
//! handshakes, headers and bodies have deadlines, bodies have a size limit.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::http::{self, Req, Response};

/// Largest request body accepted (forms and JSON are small; a key line is under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The client address: the TCP peer, or — only when the peer is a configured proxy — the last address in its
/// `X-Forwarded-For` (the one the proxy itself saw).
fn client_of(app: &App, peer: IpAddr, headers: &hyper::HeaderMap) -> IpAddr {
    if !app
        .settings
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer))
    {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(peer)
}

async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response {
    let (parts, body) = req.into_parts();
    let deadline = app.settings.header_timeout;
    let collected = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY).collect()).await;
    let body = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => {
            let mut r = http::json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            );
            http::secure(&mut r, true);
            return r;
        }
        Err(_) => {
            let mut r = http::json_error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
            http::secure(&mut r, true);
            return r;
        }
    };
    let client = client_of(&app, peer.ip().to_canonical(), &parts.headers);
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
        client,
        params: Vec::new(),
    };
    app.handle(req).await
}

/// Serves the panel on `listener` until `shutdown` resolves.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(app.settings.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log::warn!(
                "connection from {peer} refused: {} connections open",
                app.settings.max_connections
            );
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), Arc::clone(&app));
        tokio::spawn(async move {
            let _slot = slot;
            let deadline = app.settings.header_timeout;
            let Ok(Ok(tls)) = tokio::time::timeout(deadline, acceptor.accept(stream)).await else {
                return;
            };
            let service = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(app, req, peer).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(deadline)
                .max_buf_size(MAX_BODY)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// `https://<host>/<path>` for a plain-HTTP request, when `Host` is a plain host name or address; `/` otherwise.
fn https_location(host: Option<&str>, path_and_query: &str) -> String {
    let host = host.unwrap_or("");
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => host,
    };
    let plain = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let path = if path_and_query.starts_with('/') && !path_and_query.starts_with("//") {
        path_and_query
    } else {
        "/"
    };
    if plain {
        format!("https://{bare}{path}")
    } else {
        "/".to_owned()
    }
}

fn redirect_response(req: &Request<Incoming>) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(
        b"This panel is served over HTTPS only.\n",
    )));
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&https_location(host, pq)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Port 80: every request is redirected to HTTPS; nothing else is served.
pub async fn serve_redirect(
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                service_fn(|req| async move { Ok::<_, Infallible>(redirect_response(&req)) });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::https_location;

    #[test]
    fn redirects_only_to_plain_hosts() {
        assert_eq!(
            https_location(Some("box.example"), "/login?x=1"),
            "https://box.example/login?x=1"
        );
        assert_eq!(
            https_location(Some("10.0.0.5:80"), "/"),
            "https://10.0.0.5/"
        );
        assert_eq!(
            https_location(Some("[2001:db8::1]:80"), "/a"),
            "https://[2001:db8::1]/a"
        );
        assert_eq!(https_location(Some("evil.example/@x"), "/"), "/");
        assert_eq!(https_location(Some("a\r\nSet-Cookie: x"), "/"), "/");
        assert_eq!(https_location(None, "/"), "/");
        assert_eq!(
            https_location(Some("box"), "//evil.example/"),
            "https://box/"
        );
    }
}
