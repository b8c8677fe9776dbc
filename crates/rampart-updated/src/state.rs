//! The update journal: where an update is, persisted after every step, so that any step can be repeated after a
//! crash or reboot and the update resumes instead of starting over.
//!
//! Phases (an explicit state machine, transitions are methods; anything else is [`Error::Transition`]):
//! ```text
//! Idle|Blessed|Failed --begin--> MetadataVerified --> WritingSlot{chunks_done} --> SlotWritten --> SlotVerified
//!   --> BootFilesWritten --> Snapshotted --> EntryWritten{entry, boot_id} --(reboot into it)--> PendingBless
//!   --(systemd-bless-boot removed the counter)--> Blessed
//! any phase with a version --fail--> Failed{version, reason}     SlotWritten --slot_verify_failed--> WritingSlot{0}
//! ```
//! Beside the phase: the history of attempts, the versions that failed here (never retried automatically), the
//! anti-rollback floor (raised when a version is blessed), and what `rampart_update::Trusted` needs next time
//! (the trusted-time floor and the known metadata versions).
//!
//! Storage: one JSON file, written to a temp file, fsynced, renamed over the journal, then the directory fsynced.
//! Chosen over SQLite (`rampart_common::db`) because the journal is one small document with a single writer whose
//! whole value changes at once; a tagged enum maps to JSON directly, there are no queries, and an admin can read
//! it with `jq` on a rescue shell. A leftover temp file from a crash mid-write is never read: the journal is the
//! renamed file or nothing. A damaged journal is an error naming the file, never silently reset (resetting
//! could forget a failed version and retry it).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_update::KnownVersions;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::io;
use crate::plan::Plan;
use crate::Error;

pub const FORMAT: u32 = 1;
pub const FILE_NAME: &str = "journal.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    Idle,
    /// Targets metadata verified; the plan names every file and digest to install.
    MetadataVerified {
        plan: Plan,
    },
    /// Every chunk below `chunks_done` is on the slot and was synced before this was recorded.
    WritingSlot {
        plan: Plan,
        chunks_done: usize,
    },
    SlotWritten {
        plan: Plan,
    },
    /// The whole slot hashed to the chunk index's image digest.
    SlotVerified {
        plan: Plan,
    },
    /// Kernel and initrd are in `/EFI/rampart/<version>/`, verified and synced.
    BootFilesWritten {
        plan: Plan,
    },
    /// The daemons' databases are copied to the snapshot named after the running version.
    Snapshotted {
        plan: Plan,
    },
    /// The boot entry exists: the next boot tries the new version. `boot_id` is the boot that wrote it, so a
    /// daemon restart before the reboot is not mistaken for a failed boot.
    EntryWritten {
        plan: Plan,
        entry: String,
        boot_id: String,
    },
    /// Running the new version from `slot`; systemd-bless-boot blesses it after boot-complete.target.
    PendingBless {
        version: Version,
        slot: crate::slot::Slot,
    },
    Blessed {
        version: Version,
    },
    Failed {
        version: Version,
        reason: String,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::MetadataVerified { .. } => "metadata-verified",
            Phase::WritingSlot { .. } => "writing-slot",
            Phase::SlotWritten { .. } => "slot-written",
            Phase::SlotVerified { .. } => "slot-verified",
            Phase::BootFilesWritten { .. } => "boot-files-written",
            Phase::Snapshotted { .. } => "snapshotted",
            Phase::EntryWritten { .. } => "entry-written",
            Phase::PendingBless { .. } => "pending-bless",
            Phase::Blessed { .. } => "blessed",
            Phase::Failed { .. } => "failed",
        }
    }

    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Phase::MetadataVerified { plan }
            | Phase::WritingSlot { plan, .. }
            | Phase::SlotWritten { plan }
            | Phase::SlotVerified { plan }
            | Phase::BootFilesWritten { plan }
            | Phase::Snapshotted { plan }
            | Phase::EntryWritten { plan, .. } => Some(plan),
            _ => None,
        }
    }

    /// The version this phase is about, if any.
    pub fn version(&self) -> Option<&Version> {
        match self {
            Phase::PendingBless { version, .. }
            | Phase::Blessed { version }
            | Phase::Failed { version, .. } => Some(version),
            other => other.plan().map(|p| &p.version),
        }
    }

    fn illegal(&self, step: &'static str) -> Error {
        Error::Transition {
            from: self.name(),
            step,
        }
    }

    /// A new update may start only when none is in flight (finish, fail or cancel it first).
    pub fn begin(self, plan: Plan) -> Result<Phase, Error> {
        match self {
            Phase::Idle | Phase::Blessed { .. } | Phase::Failed { .. } => {
                Ok(Phase::MetadataVerified { plan })
            }
            other => Err(other.illegal("begin a new update")),
        }
    }

    pub fn start_writing(self) -> Result<Phase, Error> {
        match self {
            Phase::MetadataVerified { plan } => Ok(Phase::WritingSlot {
                plan,
                chunks_done: 0,
            }),
            other => Err(other.illegal("start writing the slot")),
        }
    }

    /// Records synced progress. It may go down: a resume that finds a damaged chunk below the old mark lowers it.
    pub fn chunks_synced(self, chunks_done: usize) -> Result<Phase, Error> {
        match self {
            Phase::WritingSlot { plan, .. } => Ok(Phase::WritingSlot { plan, chunks_done }),
            other => Err(other.illegal("record written chunks")),
        }
    }

    pub fn slot_written(self) -> Result<Phase, Error> {
        match self {
            Phase::WritingSlot { plan, .. } => Ok(Phase::SlotWritten { plan }),
            other => Err(other.illegal("finish writing the slot")),
        }
    }

    pub fn slot_verified(self) -> Result<Phase, Error> {
        match self {
            Phase::SlotWritten { plan } => Ok(Phase::SlotVerified { plan }),
            other => Err(other.illegal("mark the slot verified")),
        }
    }

    /// The whole-slot check failed: back to writing, from a full re-scan of the slot.
    pub fn slot_verify_failed(self) -> Result<Phase, Error> {
        match self {
            Phase::SlotWritten { plan } => Ok(Phase::WritingSlot {
                plan,
                chunks_done: 0,
            }),
            other => Err(other.illegal("go back to writing the slot")),
        }
    }

    pub fn boot_files_written(self) -> Result<Phase, Error> {
        match self {
            Phase::SlotVerified { plan } => Ok(Phase::BootFilesWritten { plan }),
            other => Err(other.illegal("record the boot files")),
        }
    }

    pub fn snapshotted(self) -> Result<Phase, Error> {
        match self {
            Phase::BootFilesWritten { plan } => Ok(Phase::Snapshotted { plan }),
            other => Err(other.illegal("record the snapshot")),
        }
    }

    /// Only after the slot verified and boot files and snapshot exist: the entry is the switch.
    pub fn entry_written(self, entry: String, boot_id: String) -> Result<Phase, Error> {
        match self {
            Phase::Snapshotted { plan } => Ok(Phase::EntryWritten {
                plan,
                entry,
                boot_id,
            }),
            other => Err(other.illegal("record the boot entry")),
        }
    }

    pub fn booted_new(self) -> Result<Phase, Error> {
        match self {
            Phase::EntryWritten { plan, .. } => Ok(Phase::PendingBless {
                version: plan.version,
                slot: plan.slot,
            }),
            other => Err(other.illegal("boot the new version")),
        }
    }

    pub fn blessed(self) -> Result<Phase, Error> {
        match self {
            Phase::PendingBless { version, .. } => Ok(Phase::Blessed { version }),
            other => Err(other.illegal("bless")),
        }
    }

    /// Any phase working on a version can fail; Idle, Blessed and Failed cannot.
    pub fn fail(self, reason: String) -> Result<Phase, Error> {
        match self {
            Phase::Idle | Phase::Blessed { .. } | Phase::Failed { .. } => Err(self.illegal("fail")),
            other => match other.version().cloned() {
                Some(version) => Ok(Phase::Failed { version, reason }),
                None => Err(other.illegal("fail")),
            },
        }
    }

    /// An admin's cancel before the switch: nothing bootable was written yet, the inactive slot is just stale.
    pub fn cancel(self) -> Result<Phase, Error> {
        match self {
            Phase::MetadataVerified { .. }
            | Phase::WritingSlot { .. }
            | Phase::SlotWritten { .. }
            | Phase::SlotVerified { .. }
            | Phase::BootFilesWritten { .. }
            | Phase::Snapshotted { .. } => Ok(Phase::Idle),
            other => Err(other.illegal("cancel (the boot entry is written already)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    InProgress,
    Blessed,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub version: Version,
    /// Unix seconds.
    pub started: u64,
    pub finished: Option<u64>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub format: u32,
    pub phase: Phase,
    pub history: Vec<Attempt>,
    /// Versions that failed here; `begin` refuses them (an admin may clear one by hand).
    pub failed_versions: BTreeSet<Version>,
    /// No release below it is installed again; raised to each blessed version, never lowered.
    pub rollback_floor: Option<Version>,
    /// `Trusted::floor()` in Unix seconds: trusted time never goes back below it.
    pub trusted_time_floor: u64,
    /// `Trusted::known_versions()`.
    pub known_versions: KnownVersions,
}

/// History is for people; it is capped so the journal stays small.
const MAX_HISTORY: usize = 100;

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            format: FORMAT,
            phase: Phase::Idle,
            history: Vec::new(),
            failed_versions: BTreeSet::new(),
            rollback_floor: None,
            trusted_time_floor: 0,
            known_versions: KnownVersions::default(),
        }
    }
}

impl Journal {
    /// Applies a transition of the phase (the old phase stays if it is refused).
    pub fn transition(
        &mut self,
        f: impl FnOnce(Phase) -> Result<Phase, Error>,
    ) -> Result<(), Error> {
        let next = f(self.phase.clone())?;
        self.phase = next;
        Ok(())
    }

    /// Starts an update: refuses a version that failed here before.
    pub fn begin(&mut self, plan: Plan, now: u64) -> Result<(), Error> {
        if self.failed_versions.contains(&plan.version) {
            return Err(Error::FailedBefore(plan.version.to_string()));
        }
        let version = plan.version.clone();
        self.transition(|p| p.begin(plan))?;
        self.history.push(Attempt {
            version,
            started: now,
            finished: None,
            outcome: Outcome::InProgress,
            reason: None,
        });
        if self.history.len() > MAX_HISTORY {
            self.history.remove(0);
        }
        Ok(())
    }

    pub fn fail(&mut self, reason: String, now: u64) -> Result<(), Error> {
        let phase = self.phase.clone().fail(reason.clone())?;
        if let Phase::Failed { version, .. } = &phase {
            self.failed_versions.insert(version.clone());
            self.finish(version, Outcome::Failed, Some(reason), now);
        }
        self.phase = phase;
        Ok(())
    }

    pub fn bless(&mut self, now: u64) -> Result<(), Error> {
        let phase = self.phase.clone().blessed()?;
        if let Phase::Blessed { version } = &phase {
            if self.rollback_floor.as_ref().is_none_or(|f| f < version) {
                self.rollback_floor = Some(version.clone());
            }
            self.finish(version, Outcome::Blessed, None, now);
        }
        self.phase = phase;
        Ok(())
    }

    pub fn cancel(&mut self, now: u64) -> Result<(), Error> {
        let version = self.phase.version().cloned();
        self.transition(Phase::cancel)?;
        if let Some(v) = version {
            self.finish(&v, Outcome::Cancelled, None, now);
        }
        Ok(())
    }

    fn finish(&mut self, version: &Version, outcome: Outcome, reason: Option<String>, now: u64) {
        if let Some(a) = self
            .history
            .iter_mut()
            .rev()
            .find(|a| &a.version == version && a.outcome == Outcome::InProgress)
        {
            a.finished = Some(now);
            a.outcome = outcome;
            a.reason = reason;
        }
    }

    /// Keeps what the TUF verifier must get back next time.
    pub fn record_trust(&mut self, floor: SystemTime, known: KnownVersions) {
        let secs = floor.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.trusted_time_floor = self.trusted_time_floor.max(secs);
        self.known_versions = known;
    }

    pub fn trusted_floor(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(self.trusted_time_floor)
    }
}

/// The journal file in the state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The journal, or a fresh one when there is none yet.
    pub fn load(&self) -> Result<Journal, Error> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Journal::default()),
            Err(e) => return Err(io("read", &path)(e)),
        };
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(|source| Error::Journal {
            path: path.clone(),
            source,
        })?;
        if head.format != FORMAT {
            return Err(Error::JournalFormat {
                path,
                found: head.format,
                known: FORMAT,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| Error::Journal { path, source })
    }

    pub fn save(&self, journal: &Journal) -> Result<(), Error> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let bytes = serde_json::to_vec_pretty(journal).map_err(|source| Error::Journal {
            path: self.path(),
            source,
        })?;
        write_atomic(&self.path(), &bytes)
    }
}

/// Temp file in the same directory, fsync, rename over, fsync the directory: the file is old or new, never torn.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io("write", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    sync_dir(dir)
}

pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp"))
}

pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slot::Slot;

    pub(crate) fn plan(version: &str) -> Plan {
        let file = |k: &str| crate::plan::PlanTarget {
            name: k.into(),
            file: rampart_update::metadata::TargetFile {
                length: 1,
                hashes: rampart_update::digest::hashes(k.as_bytes()),
                custom: rampart_update::metadata::TargetCustom { kind: k.into() },
            },
        };
        Plan {
            version: Version::parse(version).unwrap(),
            slot: Slot::B,
            rootfs: file("rootfs"),
            kernel: file("kernel"),
            initrd: file("initrd"),
            chunk_index: file("chunk-index"),
        }
    }

    #[test]
    fn the_happy_path_and_its_history() {
        let mut j = Journal::default();
        j.begin(plan("1.1.0"), 10).unwrap();
        j.transition(Phase::start_writing).unwrap();
        j.transition(|p| p.chunks_synced(5)).unwrap();
        j.transition(Phase::slot_written).unwrap();
        j.transition(Phase::slot_verified).unwrap();
        j.transition(Phase::boot_files_written).unwrap();
        j.transition(Phase::snapshotted).unwrap();
        j.transition(|p| p.entry_written("rampart-1.1.0+3.conf".into(), "b1".into()))
            .unwrap();
        j.transition(Phase::booted_new).unwrap();
        j.bless(20).unwrap();
        assert_eq!(j.phase.name(), "blessed");
        assert_eq!(j.rollback_floor, Some(Version::new(1, 1, 0)));
        assert_eq!(j.history.len(), 1);
        assert_eq!(j.history[0].outcome, Outcome::Blessed);
        assert_eq!(j.history[0].finished, Some(20));
        // A new update may follow a blessed one.
        j.begin(plan("1.2.0"), 30).unwrap();
    }

    #[test]
    fn illegal_transitions_are_refused_and_change_nothing() {
        let mut j = Journal::default();
        for step in [
            Phase::start_writing as fn(Phase) -> Result<Phase, Error>,
            Phase::slot_written,
            Phase::slot_verified,
            Phase::boot_files_written,
            Phase::snapshotted,
            Phase::booted_new,
            Phase::blessed,
            Phase::cancel,
        ] {
            assert!(matches!(
                j.transition(step),
                Err(Error::Transition { from: "idle", .. })
            ));
        }
        assert!(j.fail("x".into(), 0).is_err());
        j.begin(plan("1.1.0"), 0).unwrap();
        // Two updates at once, skipping the slot check, entry before snapshot: all refused.
        assert!(j.begin(plan("1.2.0"), 0).is_err());
        j.transition(Phase::start_writing).unwrap();
        assert!(j.transition(Phase::slot_verified).is_err());
        assert!(j
            .transition(|p| p.entry_written("e".into(), "b".into()))
            .is_err());
        j.transition(Phase::slot_written).unwrap();
        assert!(j.transition(Phase::boot_files_written).is_err());
        assert_eq!(j.phase.name(), "slot-written");
    }

    #[test]
    fn failed_versions_are_never_begun_again() {
        let mut j = Journal::default();
        j.begin(plan("1.1.0"), 0).unwrap();
        j.fail("did not boot".into(), 5).unwrap();
        assert!(j.failed_versions.contains(&Version::new(1, 1, 0)));
        assert!(matches!(
            j.begin(plan("1.1.0"), 6),
            Err(Error::FailedBefore(_))
        ));
        j.begin(plan("1.1.1"), 7).unwrap();
        assert_eq!(j.history[0].outcome, Outcome::Failed);
        assert_eq!(j.history[0].reason.as_deref(), Some("did not boot"));
    }

    #[test]
    fn journal_survives_a_torn_temp_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), Journal::default());
        let mut j = Journal::default();
        j.begin(plan("1.1.0"), 1).unwrap();
        j.transition(Phase::start_writing).unwrap();
        j.transition(|p| p.chunks_synced(7)).unwrap();
        j.record_trust(
            UNIX_EPOCH + std::time::Duration::from_secs(1000),
            KnownVersions::default(),
        );
        store.save(&j).unwrap();
        // A crash in the middle of the next save leaves half a temp file: it is never read.
        fs::write(temp_path(&store.path()), b"{\"format\":1,\"phase\":{\"pha").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded, j);
        assert_eq!(loaded.trusted_time_floor, 1000);
        // The next save replaces the leftover.
        store.save(&loaded).unwrap();
        assert_eq!(store.load().unwrap(), j);
    }

    #[test]
    fn a_damaged_or_newer_journal_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(store.path(), b"{\"format\":1,").unwrap();
        assert!(matches!(store.load(), Err(Error::Journal { .. })));
        fs::write(store.path(), b"{\"format\":9}").unwrap();
        assert!(matches!(
            store.load(),
            Err(Error::JournalFormat { found: 9, .. })
        ));
    }
}
