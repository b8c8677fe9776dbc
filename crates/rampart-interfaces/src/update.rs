//! `org.rampart.Update1`: signed updates of this machine, served by rampart-updated.
//!
//! An update writes the *inactive* root slot from a verified release, then its kernel, initrd and boot entry; the
//! next boot tries it, and systemd-boot's counter falls back to the old slot if it does not come up. `Check`
//! refreshes the signed metadata from the configured source and says what it found; `Apply` starts (or resumes)
//! the work in the background and returns at once — poll `Status`. Mutating methods take the caller's session
//! token first (empty for root on the console) and go through authorize → audit → act with the permissions
//! `update.check`, `update.apply`, `update.cancel`; `Status` and `History` are reads (`update.read` in the panel).
//!
//! Times are Unix seconds (UTC); `0` means "none".

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Update1";
pub const OBJECT_PATH: &str = "/org/rampart/Update1";
pub const INTERFACE: &str = "org.rampart.Update1";

/// [`Status::phase`] when this machine was not booted from a Rampart A/B slot (a container, a rescue system).
pub const PHASE_UNAVAILABLE: &str = "unavailable";

/// [`CheckResult::state`]: a release newer than the running version verified and may be applied.
pub const CHECK_AVAILABLE: &str = "available";
/// [`CheckResult::state`]: the metadata verified and there is nothing newer to install.
pub const CHECK_NONE: &str = "none";
/// [`CheckResult::state`]: no source is configured (updated.d `source =`), so there is nothing to check.
pub const CHECK_UNCONFIGURED: &str = "unconfigured";
/// [`CheckResult::state`]: the metadata or the release was refused; `message` says why. Nothing was installed.
pub const CHECK_REFUSED: &str = "refused";

/// `Status()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Status {
    /// False when updates cannot run here; `message` says why (e.g. not booted from a Rampart slot).
    pub available: bool,
    /// The update journal's phase (`idle`, `writing-slot`, `entry-written`, `pending-bless`, `blessed`,
    /// `failed`, ...), or [`PHASE_UNAVAILABLE`].
    pub phase: String,
    /// In words: what is happening or what to do next.
    pub message: String,
    /// The running (installed) version.
    pub running_version: String,
    /// The booted slot (`root-a`, `root-b`), empty when unavailable.
    pub slot: String,
    /// The slot an update writes, empty when unavailable.
    pub target_slot: String,
    /// The version being installed (or the last one the phase is about), empty when none.
    pub update_version: String,
    /// True while the background task runs.
    pub busy: bool,
    /// The boot entry is written; the new version starts on the next reboot.
    pub reboot_pending: bool,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Estimated seconds left while writing the slot; 0 unknown.
    pub eta_secs: u64,
    /// The last check's or apply's error, empty when it succeeded.
    pub last_error: String,
    /// Versions that failed here and are never retried automatically.
    pub failed_versions: Vec<String>,
}

/// One attempt in `History()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Attempt {
    pub version: String,
    pub started: u64,
    pub finished: u64,
    /// `in-progress`, `blessed`, `failed` or `cancelled`.
    pub outcome: String,
    pub reason: String,
}

/// `Check()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct CheckResult {
    /// [`CHECK_AVAILABLE`], [`CHECK_NONE`], [`CHECK_UNCONFIGURED`] or [`CHECK_REFUSED`].
    pub state: String,
    /// The release the verified metadata offers, empty when refused before it was known.
    pub version: String,
    /// In words, including the refusal's reason.
    pub message: String,
}

#[zbus::proxy(
    interface = "org.rampart.Update1",
    default_service = "org.rampart.Update1",
    default_path = "/org/rampart/Update1",
    gen_blocking = false
)]
pub trait Update {
    /// Phase, progress, versions and slots, the last error, the never-retried versions.
    fn status(&self) -> zbus::Result<Status>;

    /// Past attempts, oldest first.
    fn history(&self) -> zbus::Result<Vec<Attempt>>;

    /// Refreshes and verifies the metadata from the configured source (permission `update.check`).
    fn check(&self, token: &str) -> zbus::Result<CheckResult>;

    /// Starts or resumes installing the verified release into the inactive slot (permission `update.apply`);
    /// returns at once. When the boot entry is written the machine reboots if `reboot_now`, or else inside the
    /// configured maintenance window (no window: never on its own).
    fn apply(&self, token: &str, reboot_now: bool) -> zbus::Result<Status>;

    /// Stops an update before its boot entry is written (permission `update.cancel`); the inactive slot is
    /// left stale, the running system is untouched.
    fn cancel(&self, token: &str) -> zbus::Result<Status>;
}
