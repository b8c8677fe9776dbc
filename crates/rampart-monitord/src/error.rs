//! Errors of rampart-monitord, named after the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// libbpf's errors carry the kernel's reason (and print the verifier's log); kept as text.
    #[error("BPF: cannot {step}: {message}")]
    Bpf { step: &'static str, message: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no cgroup v2 hierarchy is mounted (looked in /proc/self/mountinfo); monitoring needs one"
    )]
    NoCgroup2,
    #[error("monitor database: cannot {step}")]
    Db {
        step: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start a worker thread")]
    Thread(#[source] std::io::Error),
}
