//! rampart-webd: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rampart_webd::Error;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's HTTPS panel, JSON API and web first-boot wizard"
)]
struct Args {
    /// Read drop-ins from <DIR>/webd.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR", global = true)]
    config_roots: Vec<PathBuf>,
    /// Listen here instead of on the socket systemd passes (tests, development).
    #[arg(long, value_name = "ADDRESS", global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the panel (the default).
    Serve,
    /// Serve port 80: redirect everything to HTTPS.
    Redirect,
    /// Make the TLS certificate if there is none (or it ends within 30 days); print its SHA-256 fingerprint.
    MakeCert,
    /// Print the SHA-256 fingerprint of the panel's certificate.
    Fingerprint,
}

/// The listening socket: `--listen`, or the first socket systemd passed (LISTEN_FDS).
fn listener(listen: Option<&str>) -> Result<tokio::net::TcpListener, Error> {
    let std_listener = match listen {
        Some(addr) => std::net::TcpListener::bind(addr).map_err(Error::Listen)?,
        None => listenfd::ListenFd::from_env()
            .take_tcp_listener(0)
            .map_err(Error::Listen)?
            .ok_or(Error::NoListener)?,
    };
    std_listener.set_nonblocking(true).map_err(Error::Listen)?;
    tokio::net::TcpListener::from_std(std_listener).map_err(Error::Listen)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-webd") {
        eprintln!("rampart-webd: {}", rampart_common::error::chain(&e));
    }
    let result = (|| -> Result<(), Error> {
        let settings = rampart_webd::settings::load(&args.config_roots)?;
        match args.command.unwrap_or(Command::Serve) {
            Command::MakeCert => {
                let names = rampart_webd::certificate_names(&settings);
                let fp = rampart_webd::tls::ensure_cert(&settings.state_dir, &names)?;
                if let Some(path) = &settings.fingerprint_file {
                    std::fs::write(path, format!("{fp}\n")).map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                    // World-readable: a fingerprint is public, and the console (root without capabilities)
                    // reads it from here rather than from the key's directory.
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
                }
                log::info!("panel certificate for {}: SHA256 {fp}", names.join(", "));
                println!("{fp}");
                Ok(())
            }
            Command::Fingerprint => {
                println!(
                    "{}",
                    rampart_webd::tls::fingerprint_of(&settings.state_dir)?
                );
                Ok(())
            }
            command => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Task(e.to_string()))?;
                rt.block_on(async {
                    let shutdown = rampart_common::shutdown::signal_future()?;
                    let stop = async {
                        let why = shutdown.await;
                        log::info!("{why}: stopping");
                    };
                    let listener = listener(args.listen.as_deref())?;
                    if matches!(command, Command::Redirect) {
                        rampart_common::notify::ready("redirecting to HTTPS");
                        rampart_webd::server::serve_redirect(
                            listener,
                            settings.max_connections,
                            stop,
                        )
                        .await;
                        return Ok(());
                    }
                    let conn = rampart_common::bus::connect().await?;
                    rampart_webd::run(settings, &conn, listener, stop).await
                })
            }
        }
    })();
    rampart_common::notify::exit_code(result)
}
