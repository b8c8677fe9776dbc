//! Errors of rampart-webd, named after the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("TLS certificate: {0}")]
    Cert(String),
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no listening socket: run under systemd's rampart-webd.socket, or pass --listen ADDRESS (tests)"
    )]
    NoListener,
    #[error("cannot listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error("a worker task failed: {0}")]
    Task(String),
}
