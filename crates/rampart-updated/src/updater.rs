//! The daemon's state around the [`Engine`]: whether updates can run here at all, what the background task is
//! doing (phase, bytes, chunks, ETA, last error), and the three actions — check, apply, cancel — as blocking
//! functions the bus methods call. The engine stays behind one mutex for the daemon's lifetime (it holds the
//! state directory's lock); everything `Status` shows is copied into [`Live`] so a read never waits for a
//! slot write.
//!
//! Apply always verifies fresh metadata before it begins a new update (a Check minutes ago proves nothing about
//! now); resuming an update already in flight needs only the source, since its plan carries every digest.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_interfaces::update::{
    Attempt, CheckResult, Status, CHECK_AVAILABLE, CHECK_NONE, CHECK_REFUSED, CHECK_UNCONFIGURED,
    PHASE_UNAVAILABLE,
};
use rampart_update::client::{self, read_capped};
use rampart_update::{Limits, Trusted};
use semver::Version;

use crate::after_boot::BootDecision;
use crate::bundle_stage::{self, Caps};
use crate::https_source::HttpsSource;
use crate::progress::Progress;
use crate::settings::{Settings, SourceSpec};
use crate::source::{AnySource, Cancellable, DirSource};
use crate::state::{Journal, Phase};
use crate::{Engine, Error, System};

/// What `Status` shows, kept apart from the engine so reading it never blocks on a running step.
#[derive(Debug, Default)]
struct Live {
    busy: bool,
    progress: Option<Progress>,
    last_error: String,
    journal: Journal,
    /// What boots meant, not yet audited (the daemon takes them: [`Updater::take_outcomes`]).
    outcomes: Vec<BootDecision>,
}

#[derive(Debug)]
enum Backend {
    /// Not booted from a Rampart slot (or the journal cannot be used): the reason.
    Unavailable(String),
    Ready {
        engine: Box<Mutex<Engine>>,
        system: System,
    },
}

#[derive(Debug)]
pub struct Updater {
    settings: Settings,
    running_version: Version,
    backend: Backend,
    live: Mutex<Live>,
    cancel: AtomicBool,
    /// For the HTTPS source's I/O (the engine runs on blocking threads).
    runtime: tokio::runtime::Handle,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the background apply leaves for the async side to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterApply {
    Nothing,
    Reboot,
}

impl Updater {
    /// Detects the running slot and opens the engine; on a machine not booted from an A/B slot the updater
    /// still exists and says why updates are unavailable. Then settles what the last boot means. `runtime`
    /// runs the HTTPS source's I/O.
    pub fn new(
        settings: Settings,
        running_version: Version,
        runtime: tokio::runtime::Handle,
    ) -> Updater {
        let backend = match System::detect(&settings.slots, &settings.proc, running_version.clone())
            .and_then(|system| {
                Engine::open(settings.engine_config(), system.clone()).map(|e| (e, system))
            }) {
            Ok((engine, system)) => Backend::Ready {
                engine: Box::new(Mutex::new(engine)),
                system,
            },
            Err(e) => Backend::Unavailable(rampart_common::error::chain(&e)),
        };
        let updater = Updater {
            settings,
            running_version,
            backend,
            live: Mutex::new(Live::default()),
            cancel: AtomicBool::new(false),
            runtime,
        };
        if let Backend::Ready { engine, .. } = &updater.backend {
            let mut engine = lock(engine);
            match engine.after_boot() {
                Ok(BootDecision::Nothing) => {}
                Ok(d) => {
                    log::info!("after boot: {d}");
                    updater.live().outcomes.push(d);
                }
                Err(e) => updater.live().last_error = rampart_common::error::chain(&e),
            }
            updater.live().journal = engine.journal().clone();
        }
        updater
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        lock(&self.live)
    }

    pub fn available(&self) -> bool {
        matches!(self.backend, Backend::Ready { .. })
    }

    fn engine(&self) -> Result<MutexGuard<'_, Engine>, Error> {
        match &self.backend {
            Backend::Unavailable(why) => Err(Error::Unavailable(why.clone())),
            Backend::Ready { engine, .. } => engine.try_lock().map_err(|_| Error::Busy),
        }
    }

    pub fn status(&self) -> Status {
        let live = self.live();
        let mut s = Status {
            available: false,
            phase: PHASE_UNAVAILABLE.to_owned(),
            message: String::new(),
            running_version: self.running_version.to_string(),
            slot: String::new(),
            target_slot: String::new(),
            update_version: String::new(),
            busy: live.busy,
            reboot_pending: false,
            bytes_done: 0,
            bytes_total: 0,
            chunks_done: 0,
            chunks_total: 0,
            eta_secs: 0,
            last_error: live.last_error.clone(),
            failed_versions: live
                .journal
                .failed_versions
                .iter()
                .map(Version::to_string)
                .collect(),
        };
        let system = match &self.backend {
            Backend::Unavailable(why) => {
                s.message = format!("not booted from a Rampart slot: updates unavailable ({why})");
                return s;
            }
            Backend::Ready { system, .. } => system,
        };
        let phase = &live.journal.phase;
        s.available = true;
        s.slot = system.booted.to_string();
        s.target_slot = system.booted.other().to_string();
        s.phase = phase.name().to_owned();
        s.update_version = phase.version().map(Version::to_string).unwrap_or_default();
        s.reboot_pending =
            matches!(phase, Phase::EntryWritten { boot_id, .. } if *boot_id == system.boot_id);
        if let Some(p) = live.progress.as_ref().filter(|_| live.busy) {
            s.phase = p.phase.to_owned();
            s.bytes_done = p.bytes_done;
            s.bytes_total = p.bytes_total;
            s.chunks_done = p.chunks_done as u64;
            s.chunks_total = p.chunks_total as u64;
            s.eta_secs = p.eta.map_or(0, |d| d.as_secs().max(1));
            if let Some(v) = &p.version {
                s.update_version.clone_from(v);
            }
        }
        s.message = if live.busy && s.update_version.is_empty() {
            format!(
                "verifying the release before installing it into {}",
                s.target_slot
            )
        } else if live.busy {
            format!(
                "installing {} into {}: {}",
                s.update_version, s.target_slot, s.phase
            )
        } else {
            match phase {
                Phase::Idle => "no update in progress".to_owned(),
                Phase::EntryWritten { .. } if s.reboot_pending => match self.settings.window {
                    Some(_) => format!("{} is installed; it boots at the next reboot (inside the maintenance window, or `rampartctl update apply --now`)", s.update_version),
                    None => format!("{} is installed; reboot to start it", s.update_version),
                },
                Phase::PendingBless { .. } => format!("running {}; it is kept once boot-complete.target is reached", s.update_version),
                Phase::Blessed { version } => format!("{version} was installed and blessed"),
                Phase::Failed { version, reason } => format!("{version} failed and is not retried: {reason}"),
                other if other.plan().is_some() => format!("the update to {} stopped at {}; Apply resumes it, Cancel abandons it", s.update_version, s.phase),
                other => other.name().to_owned(),
            }
        };
        s
    }

    pub fn history(&self) -> Vec<Attempt> {
        self.live()
            .journal
            .history
            .iter()
            .map(|a| Attempt {
                version: a.version.to_string(),
                started: a.started,
                finished: a.finished.unwrap_or(0),
                outcome: serde_json::to_value(a.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                reason: a.reason.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The configured source: a repository directory as it is, a bundle unpacked into the state directory, or
    /// HTTPS.
    fn source(&self) -> Result<AnySource, Error> {
        let path = match self.settings.source.as_ref().ok_or(Error::NoSource)? {
            SourceSpec::Local(path) => path,
            SourceSpec::Https { url, ca } => {
                return Ok(AnySource::Https(HttpsSource::new(
                    url.clone(),
                    ca,
                    self.settings.min_progress,
                    self.runtime.clone(),
                )?))
            }
        };
        if path.is_dir() {
            Ok(AnySource::Dir(DirSource::new(path)))
        } else if path.is_file() {
            bundle_stage::stage(path, &self.settings.staging_dir(), Caps::default())
                .map(AnySource::Dir)
        } else {
            Err(Error::SourceMissing { path: path.clone() })
        }
    }

    /// The TUF walk from the trusted root over the source; the verifier's state is persisted.
    fn refresh(&self, engine: &mut Engine) -> Result<(AnySource, Trusted), Error> {
        let mut source = self.source()?;
        let limits = Limits::default();
        let root = read_root(&self.settings.trusted_root, limits.root)?;
        let journal = engine.journal();
        let mut trusted = Trusted::new(
            &root,
            journal.trusted_floor().max(SystemTime::now()),
            journal.known_versions,
            limits,
        )?;
        client::refresh(&mut trusted, &mut source, limits)?;
        engine.record_trust(&trusted)?;
        Ok((source, trusted))
    }

    /// Check: what the source offers, or why it is refused. The refusal is an answer, not a bus error.
    pub fn check(&self) -> Result<CheckResult, Error> {
        let mut engine = self.engine()?;
        let result = self.check_with(&mut engine);
        let mut live = self.live();
        live.journal = engine.journal().clone();
        live.last_error = match &result.state[..] {
            CHECK_REFUSED => result.message.clone(),
            _ => String::new(),
        };
        Ok(result)
    }

    fn check_with(&self, engine: &mut Engine) -> CheckResult {
        let refused = |version: String, e: &Error| CheckResult {
            state: CHECK_REFUSED.to_owned(),
            version,
            message: rampart_common::error::chain(e),
        };
        let trusted = match self.refresh(engine) {
            Ok((_, t)) => t,
            Err(e @ Error::NoSource) => {
                return CheckResult {
                    state: CHECK_UNCONFIGURED.to_owned(),
                    version: String::new(),
                    message: e.to_string(),
                }
            }
            Err(e) => return refused(String::new(), &e),
        };
        let release = match trusted.release() {
            Ok(r) => r,
            Err(e) => return refused(String::new(), &e.into()),
        };
        let version = release.version.to_string();
        if release.version <= self.running_version {
            return CheckResult {
                state: CHECK_NONE.to_owned(),
                message: format!(
                    "up to date: the source offers {version}, {} is running",
                    self.running_version
                ),
                version,
            };
        }
        if engine.journal().failed_versions.contains(&release.version) {
            return refused(version.clone(), &Error::FailedBefore(version));
        }
        match release.check_installable(&engine.installed(&self.settings.variant)) {
            Ok(()) => CheckResult {
                state: CHECK_AVAILABLE.to_owned(),
                message: format!("{version} is available (running {})", self.running_version),
                version,
            },
            Err(e) => refused(version, &e.into()),
        }
    }

    /// Marks the background task as started; refused when one runs or updates cannot run here.
    pub fn start(&self) -> Result<(), Error> {
        drop(self.engine()?);
        if self.settings.source.is_none() {
            return Err(Error::NoSource);
        }
        let mut live = self.live();
        if live.busy {
            return Err(Error::Busy);
        }
        live.busy = true;
        live.progress = None;
        live.last_error.clear();
        self.cancel.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// The background task (after [`Updater::start`]): begin or resume, run to the boot entry, then say whether
    /// to reboot now. Always clears `busy`.
    pub fn apply(&self, reboot_now: bool) -> AfterApply {
        let result = match &self.backend {
            Backend::Unavailable(why) => Err(Error::Unavailable(why.clone())),
            Backend::Ready { engine, .. } => {
                let mut engine = lock(engine);
                let r = self.apply_with(&mut engine);
                let r = match r {
                    // Cancelled before `begin` (nothing in flight) or after: either way the answer is Cancelled.
                    Err(_) if self.cancel.load(Ordering::SeqCst) => match engine.cancel() {
                        Ok(()) | Err(Error::Transition { .. }) => Err(Error::Cancelled),
                        Err(e) => Err(e),
                    },
                    other => other,
                };
                self.live().journal = engine.journal().clone();
                r
            }
        };
        let mut live = self.live();
        live.busy = false;
        match result {
            Ok(()) => {
                live.last_error.clear();
                let in_window = self.settings.window.is_some_and(|w| w.contains(now()));
                if reboot_now || in_window {
                    AfterApply::Reboot
                } else {
                    AfterApply::Nothing
                }
            }
            Err(e) => {
                live.last_error = rampart_common::error::chain(&e);
                log::warn!("update: {}", live.last_error);
                AfterApply::Nothing
            }
        }
    }

    fn apply_with(&self, engine: &mut Engine) -> Result<(), Error> {
        let phase = engine.journal().phase.clone();
        let mut source = match phase {
            Phase::EntryWritten { .. } => return Ok(()),
            p if p.plan().is_some() => self.source()?,
            _ => {
                let (source, trusted) = self.refresh(engine)?;
                let release = trusted.release()?;
                engine.begin(&release, &self.settings.variant)?;
                self.live().journal = engine.journal().clone();
                source
            }
        };
        let mut source = Cancellable {
            inner: &mut source,
            flag: &self.cancel,
        };
        engine.run(&mut source, &mut |p| self.live().progress = Some(p.clone()))
    }

    /// Cancel: a running task stops at its next read (then the journal goes back to idle); otherwise the update
    /// in flight is abandoned now.
    pub fn cancel(&self) -> Result<(), Error> {
        if self.live().busy {
            self.cancel.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let mut engine = self.engine()?;
        engine.cancel()?;
        self.live().journal = engine.journal().clone();
        Ok(())
    }

    /// For the maintenance-window ticker: an entry written in this boot and the window open now.
    pub fn reboot_due(&self) -> bool {
        let Backend::Ready { system, .. } = &self.backend else {
            return false;
        };
        let live = self.live();
        !live.busy
            && matches!(&live.journal.phase, Phase::EntryWritten { boot_id, .. } if *boot_id == system.boot_id)
            && self.settings.window.is_some_and(|w| w.contains(now()))
    }

    /// While the new version waits for its blessing: what the ESP says now (blessed, or still pending).
    pub fn observe_boot(&self) {
        if !matches!(self.live().journal.phase, Phase::PendingBless { .. }) {
            return;
        }
        let Ok(mut engine) = self.engine() else {
            return;
        };
        match engine.after_boot() {
            Ok(BootDecision::PendingBless { .. }) => {}
            Ok(d) => {
                log::info!("boot outcome: {d}");
                self.live().outcomes.push(d);
            }
            Err(e) => self.live().last_error = rampart_common::error::chain(&e),
        }
        self.live().journal = engine.journal().clone();
    }

    /// Boot outcomes seen since the last call, oldest first, for the audit log.
    pub fn take_outcomes(&self) -> Vec<BootDecision> {
        std::mem::take(&mut self.live().outcomes)
    }

    pub fn record_error(&self, text: String) {
        self.live().last_error = text;
    }

    /// For the watchdog: no lock poisoned by a panicking step.
    pub fn healthy(&self) -> bool {
        !self.live.is_poisoned()
            && match &self.backend {
                Backend::Ready { engine, .. } => !engine.is_poisoned(),
                Backend::Unavailable(_) => true,
            }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_root(path: &Path, cap: u64) -> Result<Vec<u8>, Error> {
    let f = File::open(path).map_err(crate::error::io("open the trusted root", path))?;
    Ok(read_capped(f, cap, "the trusted root")?)
}
