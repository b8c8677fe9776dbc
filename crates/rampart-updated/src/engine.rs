//! The apply engine: drives the journal's phases one step at a time, saving the journal after each, so the
//! daemon can call [`Engine::run`] again after any error, crash or reboot and it continues where it stopped.
//!
//! Order (the boot entry is the switch, so it comes last): chunk index → slot chunks → whole-slot verify →
//! kernel + initrd → snapshot of the daemons' state → boot entry. Re-running a finished step is harmless: boot
//! files and the snapshot are replaced atomically, the entry is rewritten with the same name, and the slot
//! writer re-hashes before it fetches.

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_update::chunks::ChunkIndex;
use rampart_update::client::read_capped;
use rampart_update::digest;
use rampart_update::release::Release;
use rampart_update::Trusted;
use semver::Version;

use crate::after_boot::{decide, BootDecision};
use crate::boot::{entry_options, EntryName, Esp, INITRD_FILE, KERNEL_FILE};
use crate::error::io;
use crate::plan::Plan;
use crate::progress::{Progress, Rate};
use crate::slot::{Slot, Slots};
use crate::slot_check::verify_slot;
use crate::slot_write::{check_frames, write_slot, Counters, SlotJob};
use crate::source::ReleaseSource;
use crate::state::{write_atomic, Journal, Phase, Store};
use crate::Error;

/// Where things are. Everything is a path so tests run in a tempdir.
#[derive(Debug, Clone)]
pub struct Config {
    pub slots: Slots,
    /// The ESP's mount point (`/efi`).
    pub esp: PathBuf,
    /// The journal and the cached chunk index (`/var/lib/rampart/updated`).
    pub state_dir: PathBuf,
    /// What is snapshotted before the switch (`/var/lib/rampart`).
    pub var_lib: PathBuf,
    /// Where snapshots go, one directory per old version (may lie under `var_lib`).
    pub snapshot_dir: PathBuf,
    /// fdatasync and journal the slot every this many written chunks (16 × 4 MiB = 64 MiB).
    pub sync_every: usize,
    /// Kernel options for new entries (`root=` is set by us); None: those of the running version's entry.
    pub kernel_options: Option<String>,
    /// Boot attempts the new entry gets before systemd-boot falls back ([`crate::boot::TRIES`]).
    pub boot_tries: u32,
}

/// What this boot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub booted: Slot,
    /// The image's `IMAGE_VERSION` (os-release, written by image/build; see rampart_common::os_release).
    pub running_version: Version,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

impl System {
    /// Reads the running slot from `<proc>/cmdline` and the boot id from `<proc>/sys/kernel/random/boot_id`.
    pub fn detect(
        slots: &Slots,
        proc: &std::path::Path,
        running_version: Version,
    ) -> Result<System, Error> {
        let read = |rel: &str| {
            let path = proc.join(rel);
            fs::read_to_string(&path).map_err(io("read", &path))
        };
        let booted = slots.booted(&read("cmdline")?)?;
        let boot_id = read("sys/kernel/random/boot_id")?.trim().to_owned();
        if boot_id.is_empty() {
            return Err(Error::Invalid {
                what: "boot id",
                value: boot_id,
                reason: "empty",
            });
        }
        Ok(System {
            booted,
            running_version,
            boot_id,
        })
    }
}

pub const CHUNK_INDEX_FILE: &str = "chunk-index.json";
pub const LOCK_FILE: &str = "lock";
/// The boot id recorded for an entry found written in a boot before this one (no boot's real id).
const EARLIER_BOOT: &str = "an earlier boot";

#[derive(Debug)]
pub struct Engine {
    config: Config,
    system: System,
    store: Store,
    journal: Journal,
    esp: Esp,
    counters: Counters,
    /// The slot write started in this process from MetadataVerified, so the slot holds nothing of ours yet and
    /// need not be re-hashed. False after a restart or an error: then the writer re-hashes and skips.
    fresh_write: bool,
    last_progress: Option<Progress>,
    /// An exclusive flock on `<state_dir>/lock` for the engine's lifetime: one writer of the slot and journal.
    _lock: fs::File,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Engine {
    /// Loads the journal and takes the state directory's lock (refused while another engine holds it).
    pub fn open(config: Config, system: System) -> Result<Engine, Error> {
        fs::create_dir_all(&config.state_dir).map_err(io("create", &config.state_dir))?;
        let lock_path = config.state_dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => Error::Locked {
                path: lock_path.clone(),
            },
            fs::TryLockError::Error(e) => io("lock", &lock_path)(e),
        })?;
        let store = Store::new(&config.state_dir);
        let journal = store.load()?;
        Ok(Engine {
            esp: Esp::new(&config.esp),
            config,
            system,
            store,
            journal,
            counters: Counters::default(),
            fresh_write: false,
            last_progress: None,
            _lock: lock,
        })
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// What this process moved so far (tests prove with it what a resume fetched).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn progress(&self) -> Option<&Progress> {
        self.last_progress.as_ref()
    }

    /// The inactive slot, the one an update writes.
    pub fn target_slot(&self) -> Slot {
        self.system.booted.other()
    }

    /// Persists what the verifier must get back next time (after every metadata refresh).
    pub fn record_trust(&mut self, trusted: &Trusted) -> Result<(), Error> {
        self.journal
            .record_trust(trusted.floor(), trusted.known_versions());
        self.save()
    }

    /// Starts installing a verified release into the inactive slot. It is checked here too: this machine's
    /// `variant`, no downgrade, not below the anti-rollback floor, not the running version, never a version
    /// that failed here.
    pub fn begin(&mut self, release: &Release<'_>, variant: &str) -> Result<(), Error> {
        if release.version == self.system.running_version {
            return Err(Error::AlreadyRunning(release.version.to_string()));
        }
        release.check_installable(&self.installed(variant))?;
        let plan = Plan::new(release, self.target_slot())?;
        self.journal.begin(plan, now())?;
        // A cached index of an older attempt must not be mistaken for this one's (its digest would not match
        // anyway; removing it keeps the state directory honest).
        let cached = self.index_path();
        let _ = fs::remove_file(&cached);
        self.fresh_write = false;
        self.save()
    }

    /// An admin's cancel before the boot entry exists.
    pub fn cancel(&mut self) -> Result<(), Error> {
        self.journal.cancel(now())?;
        self.save()
    }

    /// Runs steps until the boot entry is written (or nothing is in flight). Errors leave the journal at the
    /// last completed step; call again to resume.
    pub fn run(
        &mut self,
        source: &mut dyn ReleaseSource,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), Error> {
        while self.step(source, progress)? {}
        Ok(())
    }

    /// One phase forward; false when there is nothing more to do before a reboot.
    pub fn step(
        &mut self,
        source: &mut dyn ReleaseSource,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<bool, Error> {
        let phase = self.journal.phase.clone();
        self.report(progress, &phase);
        // Never write the running slot, whatever the journal says (it could come from another boot).
        if let Some(plan) = phase.plan() {
            if plan.slot == self.system.booted && !matches!(phase, Phase::EntryWritten { .. }) {
                return Err(Error::RunningSlot { slot: plan.slot });
            }
        }
        match phase {
            Phase::MetadataVerified { plan } => {
                // Entries that boot the slot we are about to overwrite go first: from now on that slot holds
                // no version whole, and a menu pick of such an entry would pair its kernel with a torn root.
                self.remove_entries_on(plan.slot)?;
                self.fetch_index(&plan, source)?;
                self.journal.transition(Phase::start_writing)?;
                self.fresh_write = true;
            }
            Phase::WritingSlot { plan, .. } => {
                let index = self.load_index(&plan, source)?;
                let rescan = !self.fresh_write;
                // Whatever happens now, a retry must re-hash: chunks may be on the slot.
                self.fresh_write = false;
                let device = self.config.slots.device(plan.slot);
                let job = SlotJob {
                    index: &index,
                    rootfs: &plan.rootfs,
                    device: &device,
                    rescan,
                    sync_every: self.config.sync_every,
                };
                // The rate starts at the first report: chunks found good at resume are not speed.
                let mut rate: Option<Rate> = None;
                let version = plan.version.to_string();
                let Engine {
                    journal,
                    store,
                    counters,
                    last_progress,
                    ..
                } = self;
                let mut on_sync = |n: usize| -> Result<(), Error> {
                    journal.transition(|p| p.chunks_synced(n))?;
                    store.save(journal)
                };
                let mut on_progress = |chunks: usize, bytes: u64| {
                    let rate = rate.get_or_insert_with(|| Rate::start(bytes));
                    let p = Progress {
                        phase: "writing-slot",
                        version: Some(version.clone()),
                        bytes_done: bytes,
                        bytes_total: index.length(),
                        chunks_done: chunks,
                        chunks_total: index.count(),
                        eta: rate.eta(bytes, index.length()),
                    };
                    progress(&p);
                    *last_progress = Some(p);
                };
                write_slot(&job, source, counters, &mut on_sync, &mut on_progress)?;
                self.journal.transition(Phase::slot_written)?;
            }
            Phase::SlotWritten { plan } => {
                let index = self.load_index(&plan, source)?;
                let device = self.config.slots.device(plan.slot);
                match verify_slot(&index, &device) {
                    Ok(()) => self.journal.transition(Phase::slot_verified)?,
                    Err(e) => {
                        // Back to writing: the next run re-hashes every chunk and rewrites the bad ones.
                        self.journal.transition(Phase::slot_verify_failed)?;
                        self.save()?;
                        return Err(e);
                    }
                }
            }
            Phase::SlotVerified { plan } => {
                for (target, file) in [(&plan.kernel, KERNEL_FILE), (&plan.initrd, INITRD_FILE)] {
                    let reader = source.open(&target.repo_path(), 0)?;
                    self.esp
                        .write_boot_file(&plan.version, file, target.reader(reader))?;
                }
                self.journal.transition(Phase::boot_files_written)?;
            }
            Phase::BootFilesWritten { .. } => {
                crate::snapshot::snapshot(
                    &self.config.var_lib,
                    &self.config.snapshot_dir,
                    &self.system.running_version.to_string(),
                    &[&self.config.state_dir],
                )?;
                self.journal.transition(Phase::snapshotted)?;
            }
            Phase::Snapshotted { plan } => {
                let options =
                    entry_options(self.config.slots.uuid(plan.slot), &self.current_options()?)?;
                let entry =
                    self.esp
                        .write_entry(&plan.version, &options, self.config.boot_tries)?;
                let boot_id = self.system.boot_id.clone();
                self.journal
                    .transition(|p| p.entry_written(entry, boot_id))?;
                // The chunk index is not needed any more.
                let _ = fs::remove_file(self.index_path());
            }
            _ => return Ok(false),
        }
        self.save()?;
        Ok(true)
    }

    /// Called at daemon start and again after boot-complete.target: what this boot means for the update in
    /// flight, acted on (journal, never-retry set, a failed version's entry and kernel removed).
    pub fn after_boot(&mut self) -> Result<BootDecision, Error> {
        let entries = self.esp.entries()?;
        self.adopt_unjournaled_entry(&entries)?;
        let decision = decide(
            &self.journal.phase,
            self.system.booted,
            &self.system.boot_id,
            &entries,
        );
        match &decision {
            BootDecision::Nothing => {
                if let Phase::Failed { version, .. } = &self.journal.phase {
                    let version = version.clone();
                    self.remove_failed(&version)?;
                }
                return Ok(decision);
            }
            BootDecision::AwaitingReboot { .. } => return Ok(decision),
            BootDecision::PendingBless { .. } => {
                if matches!(self.journal.phase, Phase::EntryWritten { .. }) {
                    self.journal.transition(Phase::booted_new)?;
                }
            }
            BootDecision::Blessed { .. } => {
                if matches!(self.journal.phase, Phase::EntryWritten { .. }) {
                    self.journal.transition(Phase::booted_new)?;
                }
                self.journal.bless(now())?;
            }
            BootDecision::Failed { version, reason } => {
                // Record first, then remove the entry: if the removal fails, the version is still never begun
                // again, and the next after_boot removes what is left (below, in `Nothing`).
                self.journal.fail(reason.clone(), now())?;
                self.save()?;
                self.remove_failed(version)?;
                return Ok(decision);
            }
        }
        self.save()?;
        Ok(decision)
    }

    /// A power cut between writing the boot entry and journaling it leaves the journal at `Snapshotted` with the
    /// entry on the ESP, and systemd-boot boots the entry all the same. It is recorded now as written: in an
    /// earlier boot when it has been tried since (its counter moved, it was blessed, or this boot runs from its
    /// slot), else in this one (a daemon restart before the reboot). Without this the new version would run
    /// unrecorded (never blessed here, no floor, a journal naming the running slot), or after a fall back the
    /// entry would be written again and a failed version retried.
    fn adopt_unjournaled_entry(&mut self, entries: &[EntryName]) -> Result<(), Error> {
        let Phase::Snapshotted { plan } = &self.journal.phase else {
            return Ok(());
        };
        let Some(entry) = entries.iter().find(|e| e.version == plan.version) else {
            return Ok(());
        };
        let tried = self.system.booted == plan.slot || entry.counter.is_none_or(|c| c.done > 0);
        let boot_id = if tried {
            EARLIER_BOOT.to_owned()
        } else {
            self.system.boot_id.clone()
        };
        log::warn!(
            "the boot entry {} was written but not journaled (a power cut?); recorded now as written {}",
            entry.file,
            if tried { "before this boot" } else { "in this boot" }
        );
        let file = entry.file.clone();
        self.journal
            .transition(|p| p.entry_written(file, boot_id))?;
        self.save()
    }

    /// What `Release::check_installable` needs about this machine: the running version and the persisted
    /// anti-rollback floor (0.0.0 while nothing was blessed here; the running version bounds downgrades).
    pub fn installed(&self, variant: &str) -> rampart_update::release::Installed {
        rampart_update::release::Installed {
            variant: variant.to_owned(),
            version: self.system.running_version.clone(),
            rollback_floor: self
                .journal
                .rollback_floor
                .clone()
                .unwrap_or(Version::new(0, 0, 0)),
        }
    }

    /// Removes every entry (and its kernel directory) whose `root=PARTUUID=` is `slot`, except the running
    /// version's.
    fn remove_entries_on(&self, slot: Slot) -> Result<(), Error> {
        let uuid = self.config.slots.uuid(slot);
        for e in self.esp.entries()? {
            if e.version == self.system.running_version {
                continue;
            }
            let options = self.esp.options_of(&e)?;
            let root = options
                .split_ascii_whitespace()
                .filter_map(|w| w.strip_prefix("root=PARTUUID="))
                .next_back();
            if root.is_some_and(|r| r.eq_ignore_ascii_case(uuid.as_str())) {
                self.esp.remove_version(&e.version)?;
            }
        }
        Ok(())
    }

    /// Removes a failed version's entries and kernel directory, never the running version's.
    fn remove_failed(&self, version: &Version) -> Result<(), Error> {
        if *version == self.system.running_version {
            return Ok(());
        }
        if self.esp.entries()?.iter().any(|e| &e.version == version)
            || self.esp.version_dir(version).exists()
        {
            self.esp.remove_version(version)?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), Error> {
        self.store.save(&self.journal)
    }

    /// The phase a step starts in (the slot writer reports bytes and chunks on its own).
    fn report(&mut self, progress: &mut dyn FnMut(&Progress), phase: &Phase) {
        let p = Progress {
            phase: phase.name(),
            version: phase.version().map(|v| v.to_string()),
            bytes_done: 0,
            bytes_total: 0,
            chunks_done: 0,
            chunks_total: 0,
            eta: None,
        };
        progress(&p);
        self.last_progress = Some(p);
    }

    fn index_path(&self) -> PathBuf {
        self.config.state_dir.join(CHUNK_INDEX_FILE)
    }

    /// Fetches the chunk index target, checks it against the plan's digests, keeps it in the state directory.
    fn fetch_index(
        &self,
        plan: &Plan,
        source: &mut dyn ReleaseSource,
    ) -> Result<ChunkIndex, Error> {
        let target = &plan.chunk_index;
        let reader = source.open(&target.repo_path(), 0)?;
        let mut checked = target.reader(reader);
        let bytes = read_capped(&mut checked, target.file.length, "chunk index")?;
        checked.finish()?;
        let index = ChunkIndex::parse(&bytes)?;
        check_frames(&index, &plan.rootfs)?;
        fs::create_dir_all(&self.config.state_dir).map_err(io("create", &self.config.state_dir))?;
        write_atomic(&self.index_path(), &bytes)?;
        Ok(index)
    }

    /// The cached index if it still matches the plan's digests, else fetched again.
    fn load_index(&self, plan: &Plan, source: &mut dyn ReleaseSource) -> Result<ChunkIndex, Error> {
        let target = &plan.chunk_index;
        if let Ok(bytes) = fs::read(self.index_path()) {
            let found = digest::hashes(&bytes);
            if digest::check(
                "chunk index",
                target.file.length,
                &target.file.hashes,
                bytes.len() as u64,
                &found,
            )
            .is_ok()
            {
                let index = ChunkIndex::parse(&bytes)?;
                check_frames(&index, &plan.rootfs)?;
                return Ok(index);
            }
        }
        self.fetch_index(plan, source)
    }

    /// Options of the running version's entry (whatever its counter state), or the configured ones.
    fn current_options(&self) -> Result<String, Error> {
        if let Some(o) = &self.config.kernel_options {
            return Ok(o.clone());
        }
        let running = &self.system.running_version;
        let entry = self
            .esp
            .entries()?
            .into_iter()
            .find(|e| &e.version == running)
            .ok_or_else(|| Error::NoCurrentEntry(running.to_string()))?;
        self.esp.options_of(&entry)
    }
}

#[cfg(test)]
mod tests;
