//! rampart-updated: the device side of signed updates — writes a verified release into the inactive root slot,
//! then its kernel, initrd and boot entry, and afterwards decides from the boot that followed whether the new
//! version came up. The daemon ([`daemon::run`]) serves `org.rampart.Update1` (`rampart_interfaces::update`);
//! everything takes paths, the kernel command line and the boot id as parameters, so it runs in tests against a
//! tempdir ESP and a regular file as the slot "device".
//!
//! The daemon: [`settings`] (drop-ins `updated.d`), [`updater`] (the engine behind one lock, the state Status
//! shows, check/apply/cancel), [`service`] (the bus object; mutations authorize → audit → act), [`bundle_stage`]
//! (an offline bundle unpacked under the state directory, then read as a directory), [`https_source`] (a
//! repository over HTTPS with Range resumes), [`reboot`] (logind, behind a trait). On a machine not booted from an A/B slot (a container) it starts anyway and Status says updates are
//! unavailable and why.
//!
//! Flow for the daemon: [`System::detect`] → [`Engine::open`] (takes the state directory's lock) →
//! [`Engine::after_boot`] → `Trusted::new(root, journal.trusted_floor().max(rtc), journal.known_versions, ..)` →
//! `rampart_update::client::refresh` → [`Engine::record_trust`] → [`Engine::begin`] (checks variant, downgrade,
//! anti-rollback floor, running version, never-retry set) → [`Engine::run`] with a [`source::ReleaseSource`]
//! and a [`Progress`] callback (resumable: call it again after any error or restart) → reboot →
//! [`Engine::after_boot`] again after `boot-complete.target` to see the blessing.
//!
//! - [`slot`]: the A/B slots as types, the running one from `root=PARTUUID=`.
//! - [`state`]: the journal (phases as a state machine, history, never-retry set, anti-rollback and TUF floors).
//! - [`slot_write`]: chunk by chunk against the signed chunk index, fdatasync before the journal advances,
//!   resume by re-hashing the slot and fetching only the frames of chunks still wrong; decompression and
//!   hashing on worker threads between the in-order fetch and the in-order write.
//! - [`slot_check`]: the resume scan and the whole-slot verify, every chunk re-read and hashed on several cores.
//! - [`boot`]: kernel/initrd under `/EFI/rampart/<version>/`, the BLS entry with `+3`, and why systemd-boot
//!   picks it (loader.conf's `default rampart-*` and entry sorting; no EFI variables).
//! - [`snapshot`]: `/var/lib/rampart` (SQLite online backup) before the switch; the schema rule for rollback. The
//!   daemons' own databases are copied by the daemons when a new version first opens them (`rampart_common::db`).
//! - [`after_boot`]: pending bless, blessed, or failed (recorded, never retried, entry removed).
//!
//! Resume and the download: the rootfs target is one zstd frame per 4 MiB chunk, and the chunk index (a signed
//! target) records each frame's offset and length (see `rampart_update::chunks`). A resumed write fetches from
//! the first missing frame, with a range request or a seek, so an interruption at 50 % costs the other 50 %,
//! not the whole image again. Rejected: one zstd stream for the whole image with resume by decompressing from
//! the start and discarding (simple, but every retry re-downloads everything, on exactly the flaky links where
//! retries happen), and zstd's seekable format (its seek table is a skippable frame outside signed metadata).
//!
//! The daemon runs [`Engine::after_boot`] at start and, while the new version waits for its blessing, again on
//! every tick (30 s): systemd-bless-boot removing the entry's counter after `boot-complete.target` is what it
//! waits for, so no ordering against that target is needed.
//!
//! Deliberately missing (next sessions): the check timer, and restoring a snapshot.

pub mod after_boot;
pub mod boot;
pub mod bundle_stage;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod https_source;
pub mod plan;
pub mod progress;
pub mod reboot;
pub mod service;
pub mod settings;
pub mod slot;
pub mod slot_check;
pub mod slot_write;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod updater;

pub use engine::{Config, Engine, System};
pub use error::Error;
pub use progress::Progress;
pub use slot::{PartUuid, Slot, Slots};
