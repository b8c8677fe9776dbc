//! rampart-identityd: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's accounts, roles, 2FA, sessions and first-boot setup on the system bus"
)]
struct Args {
    /// Read drop-ins from <DIR>/identityd.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-identityd") {
        eprintln!("rampart-identityd: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| rampart_identityd::Error::Task(e.to_string()))
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_identityd::settings::load(&args.config_roots)?;
                let builder = zbus::connection::Builder::system()
                    .map_err(|e| rampart_common::Error::BusConnect(Box::new(e)))?;
                rampart_identityd::run(builder, settings, None, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
