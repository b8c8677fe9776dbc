//! rampart-tenantd: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's tenants: users, SFTP chroots and slices with a plan's limits"
)]
struct Args {
    /// Read drop-ins from <DIR>/tenantd.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-tenantd") {
        eprintln!("rampart-tenantd: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| rampart_tenantd::Error::Task(e.to_string()))
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_tenantd::settings::load(&args.config_roots)?;
                let builder = zbus::connection::Builder::system()
                    .map_err(|e| rampart_common::Error::BusConnect(Box::new(e)))?;
                // No flag replaces systemd or root: a privilege switch has no place in a shipped binary.
                let overrides = rampart_tenantd::Overrides::default();
                rampart_tenantd::run(builder, settings, overrides, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
