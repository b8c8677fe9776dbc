//! `org.rampart.Identity1`: accounts, roles and permissions, sessions, and the first-boot setup, served by
//! rampart-identityd.
//!
//! **Sessions.** A login is two steps: [`Identity::login`] checks the password and returns a short-lived
//! [`Challenge`]; [`Identity::login_second_factor`] checks a TOTP code (or a recovery code) and returns a
//! [`Session`] with a fresh token. Tokens are 256-bit random strings; identityd stores only their SHA-256. Every
//! other daemon's guard passes the caller's token to [`Identity::authorize`] with the permission its method needs.
//! 2FA cannot be turned off: an account without an enrolled TOTP secret must enrol at its next login.
//!
//! **Setup.** Until the first-boot setup is complete nobody can log in. The console wizard (root) takes a setup
//! token with [`Identity::setup_begin_console`]; the web wizard with the one-time code the console shows
//! ([`Identity::setup_begin`]). A setup token holds only the [`ROLE_SETUP`] permissions: create the admin, add
//! an SSH key, move SSH to its port. [`Identity::setup_finish`] completes the setup only when the admin has a
//! confirmed TOTP secret, an SSH key, and SSH has been moved to a non-default port with a proven login; then every
//! setup token is revoked, so whichever wizard finishes first closes the other.
//!
//! Times are Unix seconds (UTC); `0` means "none". Mutating methods take the caller's session token first (empty
//! for root on the console) and go through authorize → audit → act.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const BUS_NAME: &str = "org.rampart.Identity1";
pub const OBJECT_PATH: &str = "/org/rampart/Identity1";
pub const INTERFACE: &str = "org.rampart.Identity1";

/// Every permission, after the method it guards: `<daemon>.<verb>`. Mutating D-Bus methods across all daemons
/// have one each; the `*.read` ones gate what the panel shows.
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("audit.read", "read the audit log"),
    (
        "firewall.read",
        "see firewall rules, bans and the allowlist",
    ),
    (
        "firewall.open",
        "open a port (an expiring or permanent rule)",
    ),
    ("firewall.close", "remove a firewall rule"),
    ("firewall.review", "mark a rule as reviewed"),
    (
        "firewall.ssh-access",
        "change the SSH ports or sources the firewall admits",
    ),
    (
        "firewall.confirm",
        "confirm a pending lockout-prone firewall change",
    ),
    ("firewall.ban", "ban a source"),
    ("firewall.unban", "lift a ban"),
    ("firewall.allow", "add a source to the never-ban allowlist"),
    ("firewall.disallow", "remove a source from the allowlist"),
    ("ssh.read", "see the SSH port, keys and their last use"),
    ("ssh.port", "move SSH to another port, or cancel a move"),
    (
        "ssh.confirm",
        "confirm an SSH port move after a login on the new port",
    ),
    ("ssh.key-add", "add an SSH key"),
    ("ssh.key-remove", "remove an SSH key"),
    (
        "ssh.account",
        "enable, disable or time-limit an account's SSH access",
    ),
    ("update.read", "see the update status and history"),
    (
        "update.check",
        "refresh the signed update metadata and see what is available",
    ),
    (
        "update.apply",
        "install an update into the inactive slot (and reboot into it)",
    ),
    (
        "update.cancel",
        "stop an update before its boot entry is written",
    ),
    ("tenant.read", "see tenants and their plans"),
    ("tenant.create", "create a tenant"),
    ("tenant.plan", "move a tenant to another plan"),
    (
        "tenant.suspend",
        "stop a tenant's processes and refuse its logins",
    ),
    (
        "tenant.resume",
        "let a suspended or deleted tenant log in again",
    ),
    (
        "tenant.delete",
        "delete a tenant (its data goes after the retention period)",
    ),
    (
        "tenant.service",
        "start and stop a tenant's long-running services (in its slice, as its user)",
    ),
    ("monitor.read", "see tenants' counters, ports and alerts"),
    (
        "monitor.enforce",
        "deny a tenant outbound ports or listening ports",
    ),
    ("identity.read", "see accounts and sessions"),
    ("identity.account-create", "create an account"),
    (
        "identity.account-disable",
        "disable or re-enable an account",
    ),
    (
        "identity.account-expiry",
        "set or clear an account's expiry",
    ),
    (
        "identity.2fa-reset",
        "reset an account's 2FA (it must enrol again)",
    ),
    (
        "identity.2fa-recover",
        "reset an account's 2FA with one of its recovery codes (console)",
    ),
    ("identity.session-revoke", "end another account's sessions"),
    (
        "identity.grant-root",
        "create or change accounts with the root role",
    ),
    ("identity.password", "change one's own password"),
    (
        "identity.setup",
        "create the first administrator during setup",
    ),
];

/// Full control, including over other root accounts.
pub const ROLE_ROOT: &str = "root";
/// Everything except managing root accounts: the role for staff and contractors.
pub const ROLE_ADMIN: &str = "admin";
/// Reads everything, changes nothing (except its own password).
pub const ROLE_AUDITOR: &str = "auditor";
/// A hosting customer: only its own tenant (the tenants issue adds those permissions).
pub const ROLE_TENANT: &str = "tenant";
/// Setup tokens only (never an account's role): what the first-boot wizards need, nothing more.
pub const ROLE_SETUP: &str = "setup";

/// Roles an account may have, as `CreateAccount` accepts them.
pub const ACCOUNT_ROLES: &[&str] = &[ROLE_ROOT, ROLE_ADMIN, ROLE_AUDITOR, ROLE_TENANT];

const SETUP_PERMISSIONS: &[&str] = &[
    "identity.setup",
    "ssh.key-add",
    "ssh.port",
    "ssh.confirm",
    "ssh.read",
    // sshconfd passes the wizard's token on to firewalld when it moves the SSH port.
    "firewall.ssh-access",
    "firewall.confirm",
];
const AUDITOR_PERMISSIONS: &[&str] = &[
    "audit.read",
    "firewall.read",
    "ssh.read",
    "identity.read",
    "identity.password",
    "update.read",
    "tenant.read",
    "monitor.read",
];
const TENANT_PERMISSIONS: &[&str] = &["identity.password"];

/// Whether `role` holds `permission`. Unknown roles and permissions hold nothing.
pub fn role_allows(role: &str, permission: &str) -> bool {
    if !PERMISSIONS.iter().any(|(name, _)| *name == permission) {
        return false;
    }
    match role {
        ROLE_ROOT => true,
        ROLE_ADMIN => permission != "identity.grant-root" && permission != "identity.setup",
        ROLE_AUDITOR => AUDITOR_PERMISSIONS.contains(&permission),
        ROLE_TENANT => TENANT_PERMISSIONS.contains(&permission),
        ROLE_SETUP => SETUP_PERMISSIONS.contains(&permission),
        _ => false,
    }
}

/// Setup states, as [`SetupInfo::state`] names them.
pub const SETUP_PENDING: &str = "pending";
pub const SETUP_COMPLETE: &str = "complete";

/// `SetupState()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SetupInfo {
    /// [`SETUP_PENDING`] or [`SETUP_COMPLETE`].
    pub state: String,
    /// Which wizard completed it (`console` or `web`), empty while pending.
    pub completed_via: String,
    pub completed_at: u64,
    /// The admin the setup created, empty while pending.
    pub admin: String,
    /// Changes whenever a new setup code is made: the console redraws when it moves.
    pub code_generation: u64,
}

/// `SetupCode()`: the one-time code for the web wizard (root only, for the console to show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SetupCode {
    pub code: String,
    pub expires_at: u64,
    pub generation: u64,
}

/// A new TOTP secret to enrol: shown once, as a QR code of `uri` and as base32 `secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Enrolment {
    pub secret: String,
    /// `otpauth://totp/…` for authenticator apps.
    pub uri: String,
}

/// `Login()`: the password was right; the second factor is next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Challenge {
    /// For `LoginSecondFactor` only; dies at `expires_at` or after a wrong code too many.
    pub token: String,
    pub expires_at: u64,
    /// True when the account has no TOTP secret yet (new account, or 2FA reset): `enrolment` must be set up and
    /// its first code typed to finish the login.
    pub enrol: bool,
    /// Empty unless `enrol`.
    pub enrolment: Enrolment,
}

/// A full session, after every factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Session {
    /// The secret the client presents (a cookie); identityd keeps only its hash.
    pub token: String,
    /// Opaque id for logs and the session list (never the token).
    pub id: String,
    /// The anti-CSRF token of this session, for forms and API clients.
    pub csrf: String,
    pub username: String,
    pub role: String,
    pub idle_expires_at: u64,
    pub expires_at: u64,
    /// Ten single-use recovery codes, only when this login enrolled TOTP; shown once, stored hashed.
    pub recovery_codes: Vec<String>,
}

/// `SessionInfo()`: what a valid token stands for (refreshes its idle timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SessionInfo {
    pub id: String,
    pub csrf: String,
    /// The account; for a setup token (role [`ROLE_SETUP`]) the administrator it proposed, empty before that.
    pub username: String,
    pub role: String,
    pub created_at: u64,
    pub idle_expires_at: u64,
    pub expires_at: u64,
}

/// `Authorize()`: who the token's holder is, when the permission is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Principal {
    /// The account name, or `setup:console` / `setup:web` for a setup token.
    pub name: String,
    pub role: String,
    pub session_id: String,
}

/// An account as the panel and `rampartctl` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct AccountInfo {
    pub username: String,
    pub role: String,
    /// Its system user (SSH logins); the record is served from identityd's database.
    pub uid: u32,
    pub disabled: bool,
    /// Why, when disabled: `by <who>`, `expired`.
    pub disabled_reason: String,
    pub expires_at: u64,
    pub created_at: u64,
    pub created_by: String,
    pub last_login: u64,
    pub totp_enrolled: bool,
    pub recovery_codes_left: u32,
}

#[zbus::proxy(
    interface = "org.rampart.Identity1",
    default_service = "org.rampart.Identity1",
    default_path = "/org/rampart/Identity1",
    gen_blocking = false
)]
pub trait Identity {
    /// The principal behind `token` if its role holds `permission`; `AccessDenied` otherwise (unknown, expired or
    /// revoked token, disabled or expired account, or a role without the permission). Refreshes the idle timeout.
    fn authorize(&self, token: &str, permission: &str) -> zbus::Result<Principal>;

    /// What `token` stands for (refreshes the idle timeout); `AccessDenied` when it is not a live session.
    fn session_info(&self, token: &str) -> zbus::Result<SessionInfo>;

    /// First factor. `source` is the client's address (for throttling and the journal). Refused during setup,
    /// for unknown, disabled or expired accounts, wrong passwords and throttled accounts or sources, all with the
    /// same `AccessDenied` text, so a caller cannot tell which.
    fn login(&self, username: &str, password: &str, source: &str) -> zbus::Result<Challenge>;

    /// Second factor: a TOTP code (each accepted once) or a recovery code (single use).
    fn login_second_factor(
        &self,
        challenge: &str,
        code: &str,
        source: &str,
    ) -> zbus::Result<Session>;

    /// Ends the session.
    fn logout(&self, token: &str) -> zbus::Result<()>;

    /// Every account.
    fn accounts(&self) -> zbus::Result<Vec<AccountInfo>>;

    /// Creates an account (permission `identity.account-create`; `identity.grant-root` for `role` root). The
    /// password must pass the policy; the account enrols TOTP at its first login. `expires_at` 0: no expiry.
    fn create_account(
        &self,
        token: &str,
        username: &str,
        role: &str,
        password: &str,
        expires_at: u64,
    ) -> zbus::Result<AccountInfo>;

    /// Disables or re-enables an account (permission `identity.account-disable`); disabling ends its sessions
    /// and its SSH access.
    fn set_disabled(
        &self,
        token: &str,
        username: &str,
        disabled: bool,
    ) -> zbus::Result<AccountInfo>;

    /// Sets when an account stops working, 0 for never (permission `identity.account-expiry`).
    fn set_expiry(&self, token: &str, username: &str, expires_at: u64)
        -> zbus::Result<AccountInfo>;

    /// Forgets an account's TOTP secret and recovery codes (permission `identity.2fa-reset`): it enrols again
    /// at its next login. Ends its sessions.
    fn reset_second_factor(&self, token: &str, username: &str) -> zbus::Result<AccountInfo>;

    /// Console recovery (root on the console only; permission `identity.2fa-recover`): with one of the
    /// account's recovery codes, forget its TOTP secret so it enrols again at its next login.
    fn recover_second_factor(
        &self,
        username: &str,
        recovery_code: &str,
    ) -> zbus::Result<AccountInfo>;

    /// Changes the caller's own password (permission `identity.password`); ends its other sessions.
    fn change_password(&self, token: &str, old: &str, new: &str) -> zbus::Result<()>;

    /// Ends every session of `username` (permission `identity.session-revoke`).
    fn revoke_sessions(&self, token: &str, username: &str) -> zbus::Result<u32>;

    /// Whether setup is complete.
    fn setup_state(&self) -> zbus::Result<SetupInfo>;

    /// The web wizard's one-time code (root only): single use, 30 minutes; a new one after expiry or use, and
    /// on every start of identityd (every boot).
    fn setup_code(&self) -> zbus::Result<SetupCode>;

    /// Starts the web wizard with the code from the console; the code is spent. Wrong codes are throttled per
    /// source, and too many end the code (the console then shows a new one).
    fn setup_begin(&self, code: &str, source: &str) -> zbus::Result<String>;

    /// Starts the console wizard (root only).
    fn setup_begin_console(&self) -> zbus::Result<String>;

    /// Sets this wizard's administrator (permission `identity.setup`): name, password (policy enforced).
    /// Returns the TOTP secret to enrol; a second call replaces the first (e.g. a typo in the name).
    fn setup_admin(&self, token: &str, username: &str, password: &str) -> zbus::Result<Enrolment>;

    /// Confirms the enrolment with a code from the authenticator; returns the ten recovery codes (shown once).
    fn setup_second_factor(&self, token: &str, code: &str) -> zbus::Result<Vec<String>>;

    /// Completes the setup when every step is done (see the module docs); says which step is missing otherwise.
    fn setup_finish(&self, token: &str) -> zbus::Result<SetupInfo>;

    /// Setup was completed (by `via`: `console` or `web`); the other wizard's token no longer works.
    #[zbus(signal)]
    fn setup_completed(&self, via: &str, admin: &str) -> zbus::Result<()>;
}
