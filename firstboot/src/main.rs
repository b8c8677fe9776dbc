//! rampart-firstboot: see the library docs.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Rampart's console: first-boot wizard, then status and recovery"
)]
struct Args {}

fn main() -> ExitCode {
    let _args = Args::parse();
    if let Err(e) = rampart_common::logging::init("rampart-firstboot") {
        eprintln!("rampart-firstboot: {}", rampart_common::error::chain(&e));
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(rampart_firstboot::run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("rampart-firstboot: {e:#}");
            ExitCode::FAILURE
        }
    }
}
