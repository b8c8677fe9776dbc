//! Errors of rampart-tenantd, named after the step that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    /// The caller sent something unusable; nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error("there is no tenant named {0:?}; `rampartctl tenant list` shows them")]
    NotFound(String),
    #[error(
        "tenant {tenant} has no service {name}; `rampartctl tenant services {tenant}` lists them"
    )]
    NoService { tenant: String, name: String },
    /// Well-formed but not possible in the tenant's state (or the name is taken); nothing changed.
    #[error("{0}")]
    Refused(String),
    #[error("tenants database: cannot {step}")]
    Db {
        step: &'static str,
        source: rusqlite::Error,
    },
    #[error("cannot {step} {path}")]
    Directory {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not what rampart-tenantd made ({found}); move it aside, then retry")]
    Foreign { path: PathBuf, found: String },
    #[error("systemd: cannot {step}: {message}")]
    Systemd { step: String, message: String },
    #[error("rampart-sshconfd refused or did not answer: {0}")]
    Ssh(String),
    #[error("no free uid left in {first}-{last}: widen uid_min/uid_max in tenantd.d")]
    NoUid { first: u32, last: u32 },
    #[error("a worker thread failed: {0}")]
    Task(String),
}

impl Error {
    pub fn db(step: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Db { step, source }
    }

    pub fn dir(step: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Directory { step, path, source }
    }
}

impl From<Error> for rampart_interfaces::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => rampart_interfaces::Error::InvalidArgument(m),
            e @ (Error::NotFound(_) | Error::NoService { .. }) => {
                rampart_interfaces::Error::InvalidArgument(e.to_string())
            }
            other => rampart_interfaces::Error::Failed(rampart_common::error::chain(&other)),
        }
    }
}
