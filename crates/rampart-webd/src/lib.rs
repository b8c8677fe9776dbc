//! rampart-webd: the HTTPS panel, its JSON API and the web first-boot wizard — the only Rampart daemon that
//! listens on the network, so it holds nothing: no capabilities, no database, no secrets but its TLS key. Every
//! fact and every change comes from the other daemons over D-Bus, with the client's session token, and they
//! authorize and audit it; webd could be fully compromised without granting more than the sessions it sees.
//!
//! - [`server`]: socket-activated listeners (systemd hands over 443 and 80), TLS ([`tls`]: rustls, TLS 1.3/1.2,
//!   AEAD only), HTTP/1.1 with deadlines, connection cap and body limit; port 80 only redirects.
//! - [`app`]: per request — rate limits ([`limits`]), the route table ([`routes`]), the setup phase, sessions,
//!   cross-site checks (Origin, CSRF tokens), security headers (strict CSP with no script at all).
//! - [`pages`]: server-rendered HTML (maud); [`api`]: JSON with a committed OpenAPI description.
//! - [`authlog`]: the journal entries rampart-guardd bans brute-forcers from.
//!
//! `Host` and `X-Forwarded-*` are not trusted: links are relative, and a forwarded client address is believed
//! only from a configured proxy. Rejected: a JavaScript front end (more code in the browser to trust and to
//! audit; forms do the job) and an embedded template engine with runtime templates (maud checks at compile time).

pub mod api;
pub mod app;
pub mod authlog;
pub mod backend;
mod error;
pub mod http;
pub mod limits;
pub mod pages;
pub mod routes;
pub mod server;
pub mod settings;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

pub use error::Error;

use crate::app::App;
use crate::backend::Backend;
use crate::settings::Settings;

/// This machine's host name.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "rampart".to_owned())
}

/// The names the first-boot certificate is made for: the host name, the configured names, and the addresses the
/// machine has now (global ones: not loopback or link-local), so a client connecting by address finds it named.
pub fn certificate_names(settings: &Settings) -> Vec<String> {
    let mut names = vec![host_name()];
    names.extend(settings.certificate_names.iter().cloned());
    names.extend(
        rampart_common::net::global_addresses()
            .iter()
            .map(|ip| ip.to_string()),
    );
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Serves the panel on `listener` with the certificate in the state directory until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    conn: &zbus::Connection,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let tls = tls::server_config(&settings.state_dir)?;
    let backend = Backend::new(conn)
        .await
        .map_err(|e| Error::Common(rampart_common::Error::BusConnect(Box::new(e))))?;
    let app = Arc::new(App::new(backend, settings, host_name()));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    log::info!("serving the panel on {addr}");
    rampart_common::notify::ready(&format!("serving on {addr}"));
    let _watchdog = rampart_common::notify::spawn_watchdog(|| true);
    server::serve_https(listener, tls, app, shutdown).await;
    rampart_common::notify::stopping("stopping");
    Ok(())
}
