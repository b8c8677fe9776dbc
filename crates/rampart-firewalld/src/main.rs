//! rampart-firewalld: see the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's host firewall: the nftables table `inet rampart` on the system bus"
)]
struct Args {
    /// Read drop-ins from <DIR>/firewalld.d instead of the standard places (repeatable, lowest first).
    #[arg(long = "config-root", value_name = "DIR")]
    config_roots: Vec<PathBuf>,
    /// Apply the stored state to the kernel and exit (boot, before the network; no bus needed).
    #[arg(long)]
    restore: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-firewalld") {
        eprintln!("rampart-firewalld: {}", rampart_common::error::chain(&e));
    }
    let result = if args.restore {
        rampart_firewalld::settings::load(&args.config_roots)
            .map_err(rampart_firewalld::Error::from)
            .and_then(rampart_firewalld::restore)
            .map(|status| log::info!("restored: {status}"))
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(rampart_firewalld::Error::Thread)
            .and_then(|rt| {
                rt.block_on(async {
                    let shutdown = rampart_common::shutdown::signal_future()?;
                    let settings = rampart_firewalld::settings::load(&args.config_roots)?;
                    // No flag maps another uid to root@console: a privilege switch has no place in a shipped binary.
                    rampart_firewalld::run(settings, None, shutdown).await
                })
            })
    };
    rampart_common::notify::exit_code(result)
}
