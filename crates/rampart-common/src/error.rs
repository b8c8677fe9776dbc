//! Errors of the shared plumbing. Each variant names the step that failed and carries the path or operation.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config directory {path}")]
    ConfigDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read config file {path}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    ConfigParse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    ConfigInvalid(String),

    #[error(
        "cannot open database {path} (its directory must exist and be writable by the daemon: under \
         ProtectSystem=strict only its StateDirectory is)"
    )]
    DbOpen {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} is damaged ({detail}); it was left untouched: restore it from a snapshot or move it aside"
    )]
    DbCorrupt { path: PathBuf, detail: String },
    #[error(
        "database {path} has schema version {found}, newer than this program understands ({known}); \
         run the version that wrote it or restore the snapshot taken before the update"
    )]
    DbTooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error(
        "cannot keep a copy of database {path} as version {version} left it ({detail}); the database was not \
         changed: make room in its directory (or fix IMAGE_VERSION if it is named), then restart the daemon"
    )]
    DbSnapshot {
        path: PathBuf,
        version: String,
        detail: String,
    },
    #[error("cannot migrate database {path} to schema version {version}")]
    DbMigrate {
        path: PathBuf,
        version: u32,
        source: rusqlite::Error,
    },

    #[error("cannot connect to the system bus")]
    BusConnect(#[source] Box<zbus::Error>),
    #[error(
        "the bus policy does not let this user own {name}: install its policy in \
         /usr/share/dbus-1/system.d and reload dbus"
    )]
    BusPolicy { name: String },
    #[error("cannot own bus name {name} (is another copy running?)")]
    BusName {
        name: String,
        source: Box<zbus::Error>,
    },

    #[error("cannot install the logger")]
    Logging(#[source] std::io::Error),
    #[error("cannot install the signal handler")]
    Signal(#[source] std::io::Error),

    #[error("refusing to run {program}: {reason}")]
    ExecRefused {
        program: String,
        reason: &'static str,
    },
    #[error("cannot start {program}")]
    ExecSpawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    ExecFailed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },

    #[error("cannot write user records in {path}")]
    Userdb {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "uid {uid} is outside this daemon's range {first}-{last}; its user record was not written"
    )]
    UserdbRange { uid: u32, first: u32, last: u32 },

    #[error("invalid journal match {0:?}: expected FIELD=value (FIELD in A-Z, 0-9, _) or +")]
    JournalMatch(String),
    #[error("invalid journal cursor {0:?}")]
    JournalCursor(String),
    #[error(
        "cannot open the journal; check that the daemon's user may read it (root or group systemd-journal) and \
         that the saved cursor belongs to this machine"
    )]
    JournalOpen(#[source] std::io::Error),
    #[error("cannot read the journal")]
    JournalRead(#[source] std::io::Error),
    #[error("cannot read the journal cursor file {path}")]
    CursorRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the journal cursor file {path} does not hold a cursor; move it aside to start at the end of the journal")]
    CursorInvalid { path: PathBuf },
    #[error("cannot save the journal cursor to {path}")]
    CursorWrite {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The error and its sources on one line, `a: b: c` — how every program prints an error once, at the top.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
