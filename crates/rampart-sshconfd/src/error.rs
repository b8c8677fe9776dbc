//! Errors of rampart-sshconfd, named after the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    /// The caller sent something unusable; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The request is well-formed but not possible now (e.g. no login on the new port yet); nothing changed.
    #[error("{0}")]
    Refused(String),
    #[error("cannot {op} in the keys database")]
    Db {
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("cannot write the sshd drop-in {path}")]
    WriteConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "sshd -t refused the new configuration, so nothing was changed (this is a bug in rampart-sshconfd or a \
         local sshd_config edit; `sshd -t` shows the same): {stderr}"
    )]
    Validate { stderr: String },
    #[error("cannot reload sshd: {0}")]
    Reload(String),
    #[error("the firewall (rampart-firewalld) refused or did not answer: {0}")]
    Firewall(String),
    #[error("cannot read host keys in {path}")]
    HostKeys {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot follow sshd's log: {0}")]
    Log(String),
    #[error("a worker task failed: {0}")]
    Task(String),
}

impl Error {
    pub fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Db { op, source }
    }
}

impl From<Error> for rampart_interfaces::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => rampart_interfaces::Error::InvalidArgument(m),
            other => rampart_interfaces::Error::Failed(rampart_common::error::chain(&other)),
        }
    }
}
