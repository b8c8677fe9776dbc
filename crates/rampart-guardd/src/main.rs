//! rampart-guardd: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's brute-force guard: bans repeated login failures through the firewall"
)]
struct Args {
    /// Read drop-ins from <DIR>/guardd.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-guardd") {
        eprintln!("rampart-guardd: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(rampart_guardd::Error::Runtime)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = rampart_common::shutdown::signal_future()?;
                let settings = rampart_guardd::settings::load(&args.config_roots)?;
                rampart_guardd::run(settings, shutdown).await
            })
        });
    rampart_common::notify::exit_code(result)
}
