//! The HTTPS source against a local TLS server (rcgen certificate, the test's CA file): a signed repository from
//! rampart-release is walked and applied over it; ranges resume from an offset (also against a server that
//! ignores them); a stalled server fails within the minimum-progress timeout; a certificate from elsewhere is
//! refused.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rampart_update::client::Source;
use rampart_updated::https_source::{HttpsSource, HttpsUrl};
use rampart_updated::source::ReleaseSource;
use rampart_updated::state::Phase;

#[derive(Clone, Copy)]
enum Mode {
    Ranges,
    NoRanges,
    Stall,
}

/// Serves `root` on 127.0.0.1 over TLS; returns the port and the PEM file of the server's certificate.
async fn serve(root: PathBuf, mode: Mode, dir: &Path) -> (u16, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = dir.join(format!("ca-{}.pem", rand_name()));
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, root) = (acceptor.clone(), root.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req| handle(root.clone(), mode, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, pem)
}

fn rand_name() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn handle(
    root: PathBuf,
    mode: Mode,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Mode::Stall = mode {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let path = root.join(req.uri().path().trim_start_matches('/'));
    let Ok(data) = std::fs::read(&path) else {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    Ok(match (mode, range) {
        (Mode::Ranges, Some(from)) if from < data.len() => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                hyper::header::CONTENT_RANGE,
                format!("bytes {from}-{}/{}", data.len() - 1, data.len()),
            )
            .body(Full::new(Bytes::from(data[from..].to_vec())))
            .unwrap(),
        _ => Response::new(Full::new(Bytes::from(data))),
    })
}

fn source(port: u16, ca: &Path, min_progress: Duration) -> HttpsSource {
    let url = HttpsUrl::parse(&format!("https://localhost:{port}/")).unwrap();
    HttpsSource::new(url, ca, min_progress, tokio::runtime::Handle::current()).unwrap()
}

fn read_all(src: &mut HttpsSource, path: &str, offset: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut r = src
        .open(path, offset)
        .map_err(|e| rampart_common::error::chain(&e))?;
    std::io::Read::read_to_end(&mut r, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_resume_and_stalls_and_foreign_certificates_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    std::fs::create_dir_all(root.join("targets")).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("targets/x.bin"), &data).unwrap();
    let (ranged, ca) = serve(root.clone(), Mode::Ranges, tmp.path()).await;
    let (plain, ca_plain) = serve(root.clone(), Mode::NoRanges, tmp.path()).await;
    let (stalled, ca_stalled) = serve(root.clone(), Mode::Stall, tmp.path()).await;
    let d = data.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = source(ranged, &ca, Duration::from_secs(5));
        assert_eq!(read_all(&mut s, "targets/x.bin", 0).unwrap(), d);
        assert_eq!(
            read_all(&mut s, "targets/x.bin", 70_000).unwrap(),
            &d[70_000..]
        );
        assert!(
            s.metadata("timestamp.json", 100).unwrap().is_none(),
            "404 is None"
        );
        let err = read_all(&mut s, "targets/none", 0).unwrap_err();
        assert!(err.contains("404"), "{err}");

        let mut s = source(plain, &ca_plain, Duration::from_secs(5));
        assert_eq!(
            read_all(&mut s, "targets/x.bin", 70_000).unwrap(),
            &d[70_000..]
        );

        let mut s = source(stalled, &ca_stalled, Duration::from_secs(1));
        let err = read_all(&mut s, "targets/x.bin", 0).unwrap_err();
        assert!(err.contains("no progress in 1 s"), "{err}");

        // The ranged server's certificate is not the plain one's CA.
        let mut s = source(ranged, &ca_plain, Duration::from_secs(5));
        let err = read_all(&mut s, "targets/x.bin", 0).unwrap_err();
        assert!(err.contains("TLS handshake"), "{err}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_is_applied_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_owned();
    let (repo, image) = common::signed_release(&t);
    let (port, ca) = serve(repo.dir.clone(), Mode::Ranges, &t).await;

    let device = common::Device::new(&t, 64 * 1024, 2);
    let (slot_b, esp) = (device.slot_b(), device.config.esp.clone());
    tokio::task::spawn_blocking(move || {
        let mut engine = device.engine();
        let mut src = source(port, &ca, Duration::from_secs(10));
        device.begin(&mut engine, &repo.dir, &mut src);
        engine.run(&mut src, &mut |_| {}).unwrap();
        assert!(matches!(engine.journal().phase, Phase::EntryWritten { .. }));
        assert_eq!(&std::fs::read(&slot_b).unwrap()[..image.len()], &image[..]);
        assert!(esp.join("loader/entries/rampart-1.1.0+3.conf").exists());
    })
    .await
    .unwrap();
}
