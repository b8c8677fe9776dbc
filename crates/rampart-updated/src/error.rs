//! Errors of the apply engine, named after the step that failed; each carries the path or the version it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Metadata, a target or the chunk index did not verify (the refusal says which and why).
    #[error(transparent)]
    Update(#[from] rampart_update::Error),
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the {what} from the release source")]
    Source {
        what: String,
        source: std::io::Error,
    },
    #[error("the kernel command line has no root=PARTUUID=…; cannot tell which slot is running")]
    NoRootOnCmdline,
    #[error("root=PARTUUID={0} is neither root-a nor root-b")]
    UnknownRoot(String),
    #[error("{what} {value:?} is not valid: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("the update journal is in phase {from}, which cannot {step}")]
    Transition {
        from: &'static str,
        step: &'static str,
    },
    #[error("the update journal {} is damaged; it was left as it is", path.display())]
    Journal {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the update journal {} has format {found}; this version understands {known}", path.display())]
    JournalFormat {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("version {0} failed on this machine before and is not retried automatically")]
    FailedBefore(String),
    #[error("version {0} is the running version; reinstalling it would overwrite its own boot entry and kernel, so it is refused")]
    AlreadyRunning(String),
    #[error("another update engine holds {}; only one may write the slot and the journal", path.display())]
    Locked { path: PathBuf },
    #[error("the update targets {slot}, which is the running slot; refusing to write it")]
    RunningSlot { slot: crate::slot::Slot },
    #[error(
        "the chunk index has no zstd frame table (built by an older rampart-release); refusing it"
    )]
    NoFrameTable,
    #[error("the chunk index's frames add up to {frames} bytes, the rootfs target is {target}")]
    FrameTable { frames: u64, target: u64 },
    #[error("chunk {index}: its zstd frame does not decompress to {len} bytes")]
    Decompress {
        index: usize,
        len: u64,
        source: std::io::Error,
    },
    #[error("slot device {} is {size} bytes; the image needs {needed}", path.display())]
    SlotTooSmall {
        path: PathBuf,
        size: u64,
        needed: u64,
    },
    #[error("boot entry {name}: {reason}")]
    Entry { name: String, reason: String },
    #[error(
        "no boot entry of the running version {0} to take kernel options from, and none configured"
    )]
    NoCurrentEntry(String),
    #[error(transparent)]
    Common(#[from] rampart_common::Error),
    #[error("no update source is configured; set `source =` in /etc/rampart/updated.d/ (a repository directory or a bundle file)")]
    NoSource,
    #[error("the update source {} is neither a repository directory nor a bundle file (is the medium mounted?)", path.display())]
    SourceMissing { path: PathBuf },
    #[error("not booted from a Rampart slot: updates unavailable ({0})")]
    Unavailable(String),
    #[error("an update task is running; wait for it (Status) or cancel it")]
    Busy,
    #[error("cancelled by an administrator")]
    Cancelled,
    #[error("cannot reboot: {0}")]
    Reboot(String),
    #[error("a worker task failed: {0}")]
    Task(String),
    #[error("cannot back up the database {}", path.display())]
    Backup {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

impl From<Error> for rampart_interfaces::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { .. } => {
                rampart_interfaces::Error::InvalidArgument(rampart_common::error::chain(&e))
            }
            other => rampart_interfaces::Error::Failed(rampart_common::error::chain(&other)),
        }
    }
}
