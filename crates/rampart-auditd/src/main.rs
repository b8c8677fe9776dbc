//! rampart-auditd: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's append-only, hash-chained audit log on the system bus"
)]
struct Args {
    /// Read drop-ins from <DIR>/auditd.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-auditd") {
        eprintln!("rampart-auditd: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(rampart_auditd::Error::Thread)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_auditd::settings::load(&args.config_roots)?;
                rampart_auditd::run(settings, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
