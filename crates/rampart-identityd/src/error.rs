//! Errors of rampart-identityd, named after the step that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    /// The caller sent something unusable; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but not possible now (e.g. setup already complete); nothing changed.
    #[error("{0}")]
    Refused(String),
    /// Authentication or authorization failed; the text is safe to show the client.
    #[error("{0}")]
    Denied(String),
    #[error("cannot {op} in the identity database")]
    Db {
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("cannot hash a password: {0}")]
    Hash(String),
    #[error("rampart-sshconfd refused or did not answer: {0}")]
    Ssh(String),
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
            Error::Denied(m) => rampart_interfaces::Error::AccessDenied(m),
            other => rampart_interfaces::Error::Failed(rampart_common::error::chain(&other)),
        }
    }
}
