//! Errors of rampart-auditd, named after the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("cannot read the chain head from {path}")]
    LoadHead {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot append to the audit log")]
    Append(#[source] rusqlite::Error),
    #[error("cannot query the audit log")]
    Query(#[source] rusqlite::Error),
    #[error("the audit log holds a malformed row at record {seq}: {what}")]
    Row { seq: i64, what: String },
    #[error(
        "the writer has stopped (the daemon is shutting down or failed); the record was not stored"
    )]
    WriterGone,
    #[error("cannot start the writer thread")]
    Thread(#[source] std::io::Error),
}
