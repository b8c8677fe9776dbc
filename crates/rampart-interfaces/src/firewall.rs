//! `org.rampart.Firewall1`: the host firewall served by rampart-firewalld, which owns the nftables table
//! `inet rampart` and nothing else.
//!
//! The built-in policy accepts established/related traffic, loopback, essential ICMP/ICMPv6, the SSH port(s) (from
//! the sources [`SshAccess`] names), 80 and 443, and drops every other inbound packet. Rules added with `Open` are
//! extra *accept* rules; each one expires (default 24 h) unless it is made permanent with a written reason.
//!
//! Times are Unix seconds (UTC); `0` means "none" (never expires, never reviewed, nothing to confirm).
//! Mutating methods take the caller's session token first (empty for root on the console) and go through
//! authorize → audit → act; permissions are named `firewall.<verb>` after the method.
//!
//! Lockout-prone changes (anything that can cut SSH or panel reachability: [`Firewall::set_ssh_access`] removing a
//! port or narrowing the sources) are applied at once but revert on their own at `confirm_by` unless
//! [`Firewall::confirm`] is called; the pending revert survives a daemon restart.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Firewall1";
pub const OBJECT_PATH: &str = "/org/rampart/Firewall1";
pub const INTERFACE: &str = "org.rampart.Firewall1";

/// The nftables table the daemon owns (family `inet`).
pub const TABLE: &str = "rampart";
/// Named sets in [`TABLE`], with `timeout` flags: bans expire in the kernel even if the daemon is down.
pub const BAN_SET_V4: &str = "ban4";
pub const BAN_SET_V6: &str = "ban6";
/// Sources that are never banned.
pub const ALLOW_SET_V4: &str = "allow4";
pub const ALLOW_SET_V6: &str = "allow6";

/// An opening as a caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct RuleSpec {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Ports: `8080`, a range `8000-8100`, or a comma list of those (`80,8000-8100`). 1–65535.
    pub ports: String,
    /// Source networks in CIDR form (v4 or v6, a bare address means /32 or /128); empty means anywhere.
    pub sources: Vec<String>,
    /// Why the port is open; required, shown in `list` and the audit log.
    pub comment: String,
    /// Seconds until the rule expires; 0 means the default (24 h). Above the configured maximum is refused.
    pub expires_in: u64,
    /// Non-empty makes the rule permanent (no expiry); the text is the reason, kept with the rule.
    pub permanent_reason: String,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Rule {
    pub id: u64,
    pub protocol: String,
    /// Normalised port list, e.g. `80,8000-8100`.
    pub ports: String,
    /// Normalised CIDRs; empty means anywhere.
    pub sources: Vec<String>,
    pub comment: String,
    /// Principal that added it, e.g. `root@console`.
    pub added_by: String,
    pub added_at: u64,
    /// When someone last confirmed the rule is still needed (`Review`); starts at `added_at`.
    pub reviewed_at: u64,
    /// 0 for a permanent rule.
    pub expires_at: u64,
    pub permanent_reason: String,
}

/// The result of a change. `confirm_by` is 0 when the change is final; otherwise the change reverts at that time
/// unless `Confirm(change_id)` is called first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Change {
    pub change_id: u64,
    /// The rule created or removed; 0 when the change is not about one rule.
    pub rule_id: u64,
    pub confirm_by: u64,
}

/// A change waiting for confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct PendingChange {
    pub change_id: u64,
    /// What it did, in words (e.g. `SSH ports 22 → 2222`).
    pub description: String,
    pub requested_by: String,
    pub confirm_by: u64,
}

/// Where SSH is reachable from: the built-in accept rule for SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SshAccess {
    /// One or two ports (two while a port change is in progress).
    pub ports: Vec<u16>,
    /// CIDRs allowed to reach SSH; empty means anywhere.
    pub sources: Vec<String>,
}

/// A banned source, as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Ban {
    /// An address (v4 or v6).
    pub address: String,
    /// Seconds left before the kernel drops the ban.
    pub expires_in: u64,
}

/// An allowlisted source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Allowed {
    pub cidr: String,
    pub comment: String,
    pub added_by: String,
    pub added_at: u64,
}

/// The daemon's view of the kernel table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Status {
    pub ssh: SshAccess,
    pub rules: u64,
    pub bans: u64,
    pub pending_changes: u64,
    /// When the table was last found changed behind the daemon's back and restored; 0 never.
    pub last_reconciled: u64,
}

#[zbus::proxy(
    interface = "org.rampart.Firewall1",
    default_service = "org.rampart.Firewall1",
    default_path = "/org/rampart/Firewall1",
    gen_blocking = false
)]
pub trait Firewall {
    /// Table state in one call.
    fn status(&self) -> zbus::Result<Status>;

    /// All stored rules, oldest first.
    fn list(&self) -> zbus::Result<Vec<Rule>>;

    /// Rules whose `reviewed_at` is older than the review period (90 days by default).
    fn unreviewed(&self) -> zbus::Result<Vec<Rule>>;

    /// Adds an accept rule (permission `firewall.open`).
    fn open(&self, token: &str, spec: &RuleSpec) -> zbus::Result<Change>;

    /// Removes a rule (permission `firewall.close`).
    fn close(&self, token: &str, rule_id: u64) -> zbus::Result<Change>;

    /// Marks a rule as still needed now (permission `firewall.review`).
    fn review(&self, token: &str, rule_id: u64) -> zbus::Result<()>;

    /// Sets where SSH is reachable (permission `firewall.ssh-access`); commit-confirm when lockout-prone.
    fn set_ssh_access(&self, token: &str, access: &SshAccess) -> zbus::Result<Change>;

    /// Keeps a pending change (permission `firewall.confirm`).
    fn confirm(&self, token: &str, change_id: u64) -> zbus::Result<()>;

    /// Changes waiting for confirmation.
    fn pending(&self) -> zbus::Result<Vec<PendingChange>>;

    /// Current bans, read from the kernel sets.
    fn bans(&self) -> zbus::Result<Vec<Ban>>;

    /// Bans `address` for `seconds` (permission `firewall.ban`). Returns false, and bans nothing, when the address
    /// is allowlisted. Banning an address already banned extends the ban to the later expiry.
    fn ban(&self, token: &str, address: &str, seconds: u64, reason: &str) -> zbus::Result<bool>;

    /// Lifts a ban (permission `firewall.unban`); unbanning an address that is not banned is not an error.
    fn unban(&self, token: &str, address: &str) -> zbus::Result<()>;

    /// The allowlist.
    fn allowlist(&self) -> zbus::Result<Vec<Allowed>>;

    /// Adds a source that is never banned (permission `firewall.allow`); lifts any current ban inside it.
    fn allow(&self, token: &str, cidr: &str, comment: &str) -> zbus::Result<()>;

    /// Removes an allowlist entry (permission `firewall.disallow`).
    fn disallow(&self, token: &str, cidr: &str) -> zbus::Result<()>;
}
