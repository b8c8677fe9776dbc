//! rampart-updated: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's updater: signed releases into the inactive A/B slot, boot entries, the boot outcome"
)]
struct Args {
    /// Read drop-ins from <DIR>/updated.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-updated") {
        eprintln!("rampart-updated: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| rampart_updated::Error::Task(e.to_string()))
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_updated::settings::load(&args.config_roots)?;
                let builder = zbus::connection::Builder::system()
                    .map_err(|e| rampart_common::Error::BusConnect(Box::new(e)))?;
                let overrides = rampart_updated::daemon::Overrides::default();
                rampart_updated::daemon::run(builder, settings, overrides, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
