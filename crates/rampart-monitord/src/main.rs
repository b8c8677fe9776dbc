//! rampart-monitord: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's per-tenant eBPF monitor: traffic, ports, executions and CPU on the system bus"
)]
struct Args {
    /// Read drop-ins from <DIR>/monitord.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-monitord") {
        eprintln!("rampart-monitord: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(rampart_monitord::Error::Thread)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_monitord::settings::load(&args.config_roots)?;
                rampart_monitord::run(settings, None, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
