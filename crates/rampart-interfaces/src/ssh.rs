//! `org.rampart.Ssh1`: sshd's configuration and the SSH keys store, served by rampart-sshconfd.
//!
//! sshd reads no `authorized_keys` file: its `AuthorizedKeysCommand` asks [`Ssh::authorized_keys`] for the keys of
//! the user logging in, so only keys stored here (validated on input, attributed to whoever added them) log in, and
//! a disabled or expired account gets none.
//!
//! The SSH port changes with a commit-confirm protocol (see [`PortChange`]): the new port is opened beside the old
//! one, and the old one is closed only after a public-key login arrived on the new port. Until a port is set (the
//! first-boot wizard sets it) sshd listens on 127.0.0.1 port 22 only.
//!
//! Times are Unix seconds (UTC); `0` means "none". Mutating methods take the caller's session token first (empty
//! for root on the console) and go through authorize → audit → act with the permissions `ssh.port`, `ssh.confirm`,
//! `ssh.key-add`, `ssh.key-remove`, `ssh.account`.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Ssh1";
pub const OBJECT_PATH: &str = "/org/rampart/Ssh1";
pub const INTERFACE: &str = "org.rampart.Ssh1";

/// A key not used for this long is flagged by `Keys` callers (rampartctl, the panel) for review.
pub const UNUSED_AFTER_SECS: u64 = 90 * 24 * 3600;

/// States of a port change, as [`PortChange::state`] names them.
pub const PORT_IDLE: &str = "idle";
/// The firewall is being opened and sshd told to listen on both ports.
pub const PORT_OPENING: &str = "opening";
/// sshd listens on both ports; waiting for a public-key login on the new one and `ConfirmPort`.
pub const PORT_AWAITING_LOGIN: &str = "awaiting-login";
/// Login proven and confirmed; sshd and the firewall are being moved to the new port only.
pub const PORT_CLOSING: &str = "closing";

/// The port change in progress, or the last one's outcome when `state` is [`PORT_IDLE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct PortChange {
    /// One of the `PORT_*` state names.
    pub state: String,
    /// The port being left; 0 when no port was set (sshd on 127.0.0.1:22 only).
    pub old_port: u16,
    pub new_port: u16,
    pub started_at: u64,
    /// When an unconfirmed change reverts on its own; 0 when idle.
    pub deadline: u64,
    /// In words: what happens next, or how the last change ended (e.g. why it was reverted).
    pub message: String,
    /// In `Status()`: a public-key login has arrived on `new_port` since the change began, so `ConfirmPort` will
    /// be accepted (wizards poll this instead of calling `ConfirmPort` until it works).
    pub login_seen: bool,
}

/// `Status()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Status {
    /// The configured port; 0 when none is set yet (sshd listens on 127.0.0.1:22 only).
    pub port: u16,
    /// The ports sshd is configured to listen on right now (two during a change).
    pub listening: Vec<u16>,
    pub change: PortChange,
    pub keys: u64,
}

/// A stored key. `fingerprint` is OpenSSH's `SHA256:<base64>` form and identifies the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct KeyInfo {
    pub user: String,
    pub fingerprint: String,
    /// The OpenSSH key type, e.g. `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`.
    pub algorithm: String,
    pub bits: u32,
    pub comment: String,
    pub added_by: String,
    pub added_at: u64,
    /// Last accepted login with this key, as sshd logged it; 0 never.
    pub last_used: u64,
    /// 0: does not expire.
    pub expires_at: u64,
}

/// SSH access of one account. Accounts appear when a key is first added for them (enabled, no expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Account {
    pub user: String,
    pub enabled: bool,
    /// 0: does not expire.
    pub expires_at: u64,
}

/// One of this machine's SSH host keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct HostKey {
    pub algorithm: String,
    pub bits: u32,
    pub fingerprint: String,
}

#[zbus::proxy(
    interface = "org.rampart.Ssh1",
    default_service = "org.rampart.Ssh1",
    default_path = "/org/rampart/Ssh1",
    gen_blocking = false
)]
pub trait Ssh {
    /// Port, listening ports and the port change in progress.
    fn status(&self) -> zbus::Result<Status>;

    /// Starts moving SSH to `port` (permission `ssh.port`): refused for ports below 1024 and well-known service
    /// ports. Opens the firewall for both ports and makes sshd listen on both; then waits for a login on `port`.
    fn set_port(&self, token: &str, port: u16) -> zbus::Result<PortChange>;

    /// Finishes the change (permission `ssh.confirm`). Refused unless a public-key login arrived on the new port
    /// since the change began; then closes the old port in sshd and the firewall.
    fn confirm_port(&self, token: &str) -> zbus::Result<PortChange>;

    /// Abandons the change and returns to the old port (permission `ssh.port`).
    fn cancel_port(&self, token: &str) -> zbus::Result<PortChange>;

    /// Stores a key for `user` (permission `ssh.key-add`). `key_line` is exactly `<type> <base64> [comment]`;
    /// options, control characters, DSA, RSA below 3072 bits and unknown types are refused. An empty `comment`
    /// keeps the line's own.
    fn add_key(
        &self,
        token: &str,
        user: &str,
        key_line: &str,
        comment: &str,
        expires_at: u64,
    ) -> zbus::Result<KeyInfo>;

    /// Removes a key by fingerprint (permission `ssh.key-remove`).
    fn remove_key(&self, token: &str, fingerprint: &str) -> zbus::Result<()>;

    /// Stored keys of `user`, or of everyone when `user` is empty.
    fn keys(&self, user: &str) -> zbus::Result<Vec<KeyInfo>>;

    /// Sets an account's SSH access (permission `ssh.account`).
    fn set_account(
        &self,
        token: &str,
        user: &str,
        enabled: bool,
        expires_at: u64,
    ) -> zbus::Result<Account>;

    /// Every account with SSH access state.
    fn accounts(&self) -> zbus::Result<Vec<Account>>;

    /// The key lines sshd may accept for `user` now (for the AuthorizedKeysCommand only): none when the account
    /// is unknown, disabled or expired; expired keys are left out.
    fn authorized_keys(&self, user: &str) -> zbus::Result<Vec<String>>;

    /// This machine's host keys with their SHA256 fingerprints (for the console and the panel to show).
    fn host_keys(&self) -> zbus::Result<Vec<HostKey>>;
}
