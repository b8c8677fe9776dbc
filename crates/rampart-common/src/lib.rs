//! rampart-common: the plumbing every Rampart daemon repeats, done once.
//!
//! - [`config`]: TOML drop-ins `/usr/lib/rampart/<name>.d` < `/run/rampart/<name>.d` < `/etc/rampart/<name>.d`.
//! - [`logging`]: journald through `systemd-journal-logger`, stderr when there is no journal.
//! - [`notify`]: `sd_notify` READY/STATUS and a watchdog that pings only while the daemon is healthy.
//! - [`bus`]: system-bus connection (honours `DBUS_SYSTEM_BUS_ADDRESS`, so tests use a private bus), name
//!   ownership, and the caller's credentials.
//! - [`db`]: SQLite open with WAL, `synchronous=FULL`, busy timeout, integrity check and numbered migrations.
//! - [`shutdown`]: one future for SIGTERM/SIGINT.
//! - [`guard`]: authorize → audit → act, the only way a mutating D-Bus method may run.
//! - [`exec`]: running a program with an argv, never a shell, `--` before user values.
//! - [`journal`]: following the journal (sd-journal, polled every 10 ms), resuming from a saved cursor.
//! - [`userdb`]: system users as nss-systemd JSON records under `/run/userdb` (the root is read-only).
//! - [`units`]: systemd's Manager: units' state for status screens, transient units and stopping for the daemons
//!   that run as root; [`net`]: this machine's own addresses;
//!   [`os_release`]: the running image's version.
//!
//! Kept small and boring on purpose: anything only one daemon needs lives in that daemon.

pub mod bus;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod exec;
pub mod guard;
pub mod journal;
pub mod logging;
pub mod net;
pub mod notify;
pub mod os_release;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;
pub mod units;
pub mod userdb;

pub use error::Error;
