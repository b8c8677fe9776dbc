//! A release repository over HTTPS: metadata and targets with `GET`, a resumed target with
//! `Range: bytes=<offset>-`. Nothing here is trusted for integrity (the TUF metadata and the targets' digests
//! are); TLS keeps the mirror's content private and pins which server is asked, against the CA the machine is
//! configured with (no system roots: an appliance knows its release server).
//!
//! Caps: metadata is read up to its cap + 1 (the verifier refuses more); targets are bounded by the verifying
//! reader the engine wraps around them. Timeouts: connecting, the TLS handshake, the response head and every
//! body read must each make progress within `min_progress`, so a mirror that stalls fails the step (and Apply
//! resumes later) instead of hanging the engine. A server that ignores the range (200 instead of 206) is read
//! from the start and the skipped bytes discarded: correct, just slower.
//!
//! One connection per request: a release is a handful of files, so keep-alive would save nothing worth its
//! state. The engine is synchronous and runs on a blocking thread, so each step is `Handle::block_on`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::runtime::Handle;
use tokio_rustls::TlsConnector;

use crate::source::ReleaseSource;
use crate::Error;

/// `https://host[:port]/prefix/` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    pub host: String,
    pub port: u16,
    /// Always starts and ends with `/`.
    pub prefix: String,
}

impl HttpsUrl {
    pub fn parse(url: &str) -> Result<HttpsUrl, String> {
        let bad = |why: &str| format!("source = {url:?}: {why}");
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// URLs (or local paths) are supported"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', '[', '?', '#']) {
            return Err(bad(
                "needs a plain host name (no user, no IPv6 literal, no query)",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
            None => (authority, 443),
        };
        if path.contains(['?', '#', ' ']) || path.split('/').any(|c| c == "..") {
            return Err(bad("the path must be a plain directory"));
        }
        let mut prefix = format!("/{path}");
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(HttpsUrl {
            host: host.to_ascii_lowercase(),
            port,
            prefix,
        })
    }
}

#[derive(Clone)]
pub struct HttpsSource {
    url: HttpsUrl,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    runtime: Handle,
    min_progress: Duration,
}

impl std::fmt::Debug for HttpsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn io_other(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

impl HttpsSource {
    /// Trusts only the certificates in the PEM file `ca`. Needs a tokio runtime (`runtime`) for the I/O.
    pub fn new(
        url: HttpsUrl,
        ca: &std::path::Path,
        min_progress: Duration,
        runtime: Handle,
    ) -> Result<HttpsSource, Error> {
        let ca_err = |e: String| Error::Source {
            what: format!("TLS CA file {}", ca.display()),
            source: io_other(e),
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| ca_err(e.to_string()))? {
            roots
                .add(cert.map_err(|e| ca_err(e.to_string()))?)
                .map_err(|e| ca_err(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_err("holds no certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ca_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(url.host.clone())
            .map_err(|e| ca_err(format!("{}: {e}", url.host)))?;
        Ok(HttpsSource {
            url,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            runtime,
            min_progress,
        })
    }

    async fn step<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> std::io::Result<T> {
        match tokio::time::timeout(self.min_progress, f).await {
            Ok(r) => r.map_err(|e| io_other(format!("{what}: {e}"))),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{what}: no progress in {} s", self.min_progress.as_secs()),
            )),
        }
    }

    /// `GET <prefix><path>` from `offset`; None on 404.
    async fn get(&self, path: &str, offset: u64) -> std::io::Result<Option<BodyRead>> {
        let addr = (self.url.host.as_str(), self.url.port);
        let tcp = self
            .step("connect", tokio::net::TcpStream::connect(addr))
            .await?;
        let tls = self
            .step(
                "TLS handshake",
                self.connector.connect(self.server_name.clone(), tcp),
            )
            .await?;
        let (mut sender, conn) = self
            .step(
                "HTTP handshake",
                hyper::client::conn::http1::handshake(TokioIo::new(tls)),
            )
            .await?;
        tokio::spawn(conn);
        let host = if self.url.port == 443 {
            self.url.host.clone()
        } else {
            format!("{}:{}", self.url.host, self.url.port)
        };
        let mut req = Request::get(format!("{}{path}", self.url.prefix))
            .header(header::HOST, host)
            .header(
                header::USER_AGENT,
                concat!("rampart-updated/", env!("CARGO_PKG_VERSION")),
            );
        if offset > 0 {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(io_other)?;
        let resp = self.step("request", sender.send_request(req)).await?;
        let skip = match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::OK => offset,
            StatusCode::PARTIAL_CONTENT => {
                let range = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !range.starts_with(&format!("bytes {offset}-")) {
                    return Err(io_other(format!(
                        "asked for bytes {offset}- of {path}, the server sent {range:?}"
                    )));
                }
                0
            }
            other => return Err(io_other(format!("{path}: the server answered {other}"))),
        };
        Ok(Some(BodyRead {
            runtime: self.runtime.clone(),
            body: resp.into_body(),
            buf: Bytes::new(),
            skip,
            min_progress: self.min_progress,
            _sender: sender,
        }))
    }

    fn fetch(&self, path: &str, offset: u64) -> std::io::Result<Option<BodyRead>> {
        self.runtime.block_on(self.get(path, offset))
    }
}

/// A response body as a blocking reader; every read must make progress within `min_progress`.
struct BodyRead {
    runtime: Handle,
    body: Incoming,
    buf: Bytes,
    skip: u64,
    min_progress: Duration,
    /// The connection stays up while the body is read.
    _sender: SendRequest<Empty<Bytes>>,
}

impl Read for BodyRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.buf.is_empty() {
                if self.skip > 0 {
                    let n = usize::try_from(self.skip)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    self.buf.advance(n);
                    self.skip -= n as u64;
                    continue;
                }
                let n = out.len().min(self.buf.len());
                out[..n].copy_from_slice(&self.buf[..n]);
                self.buf.advance(n);
                return Ok(n);
            }
            let frame = self.runtime.block_on(async {
                tokio::time::timeout(self.min_progress, self.body.frame()).await
            });
            match frame {
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no data for {} s", self.min_progress.as_secs()),
                    ))
                }
                Ok(None) => return Ok(0),
                Ok(Some(Err(e))) => return Err(io_other(e)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf = data;
                    }
                }
            }
        }
    }
}

impl ReleaseSource for HttpsSource {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        let source_err = |source| Error::Source {
            what: repo_path.to_owned(),
            source,
        };
        match self.fetch(repo_path, offset).map_err(source_err)? {
            Some(body) => Ok(Box::new(body)),
            None => Err(source_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the server has no such file (404)",
            ))),
        }
    }
}

impl rampart_update::client::Source for HttpsSource {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, rampart_update::Error> {
        rampart_update::target_path::check(name)?;
        let path = format!("{}/{name}", rampart_update::layout::METADATA_DIR);
        let io_err = |source| rampart_update::Error::Io {
            op: "fetch",
            what: path.clone(),
            source,
        };
        match self.fetch(&path, 0).map_err(io_err)? {
            Some(body) => Ok(Some(rampart_update::client::read_capped(body, cap, name)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_prefix() {
        let u = HttpsUrl::parse("https://Updates.Example:8443/rampart/stable").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("updates.example", 8443, "/rampart/stable/")
        );
        assert_eq!(HttpsUrl::parse("https://u.example").unwrap().prefix, "/");
        for bad in [
            "http://u.example/",
            "https://a@u.example/",
            "https://u.example:x/",
            "https://u.example/../x",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
