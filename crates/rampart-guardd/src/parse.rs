//! Journal entry → authentication [`Event`]. Pure, total (never panics), and strict: an address is only ever taken
//! from the part of a line sshd itself formats, parsed with `std::net::IpAddr`, never matched loosely.
//!
//! sshd lines (OpenSSH 9.2, Debian bookworm; `error: `/`fatal: ` level prefixes and the ` [preauth]` suffix are
//! stripped first). The user name is the client's choice and may contain anything, including `from 1.2.3.4`, so
//! every form is parsed **from the right**, where sshd's own `ADDR port N` sits:
//!
//! | line | event |
//! |---|---|
//! | `Failed password for [invalid user ]U from A port P ssh2` (also `publickey`, `keyboard-interactive/pam`…) | failure |
//! | `Invalid user U from A port P` | failure |
//! | `maximum authentication attempts exceeded for [invalid user ]U from A port P ssh2` | failure |
//! | `Connection closed by|reset by / Disconnected from [authenticating user U |invalid user U ]A port P` | preauth failure |
//! | `Timeout before authentication for A port P` | preauth failure |
//! | `banner exchange: Connection from A port P: invalid format` (any `TAG: Connection from A port P: why`) | garbage |
//! | `Unable to negotiate with A port P: no matching …` | garbage |
//! | `Accepted publickey for U from A port P ssh2: ED25519 SHA256:…` | admin session opened |
//! | `Disconnected from user U A port P`, `Connection closed by user U A port P` | session closed (by endpoint) |
//! | `pam_unix(sshd:session): session closed for user U` | session closed (by sshd PID) |
//!
//! Not counted, on purpose: `kex_exchange_identification: …` (it carries no address; sshd follows it with a
//! `Connection closed by A port P` or `banner exchange: …` line that does, so counting both would double count),
//! `Failed none` (every client tries `none` first), PAM's `authentication failure; … rhost=` (duplicates
//! `Failed password`), `Received disconnect` (duplicates `Disconnected from`).
//!
//! Panel lines are the structured fields of `rampart_interfaces::authlog`; their `MESSAGE` text is not read.

use std::net::IpAddr;

use rampart_common::journal::Entry;
use rampart_interfaces::authlog;

/// Which login service an event is about; thresholds are per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ssh,
    Panel,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Panel => "panel",
        }
    }
}

/// What kind of failure a line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// `Failed <method> for …`: a wrong password or keyboard-interactive answer.
    BadCredentials,
    /// `Failed publickey for …` (logged at `LogLevel VERBOSE`): a key the account does not hold. Every admin whose
    /// agent holds several keys produces these before the right one is accepted, so they count 0; a key-guessing
    /// client still pays for `Invalid user`, and for `maximum authentication attempts exceeded`.
    KeyRejected,
    /// `Invalid user …`: a name that does not exist.
    InvalidUser,
    /// `maximum authentication attempts exceeded …`.
    MaxAuthTries,
    /// The connection ended during authentication (after a user name was given).
    PreauthDisconnect,
    /// The connection ended before authentication began (a scanner, or a client that gave up), or timed out.
    PreauthProbe,
    /// Not SSH at all, or nothing in common: banner garbage, no matching algorithms.
    Garbage,
    /// A failed panel login (any factor).
    PanelLogin,
}

impl FailureKind {
    /// How much the line counts towards the threshold. A disconnect after an authentication attempt counts 0:
    /// the attempt itself was already counted, and a person who mistyped once and quit must not be charged twice.
    pub fn weight(self) -> u32 {
        match self {
            FailureKind::PreauthDisconnect | FailureKind::KeyRejected => 0,
            _ => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BadCredentials => "bad-credentials",
            FailureKind::KeyRejected => "key-rejected",
            FailureKind::InvalidUser => "invalid-user",
            FailureKind::MaxAuthTries => "max-auth-tries",
            FailureKind::PreauthDisconnect => "preauth-disconnect",
            FailureKind::PreauthProbe => "preauth-probe",
            FailureKind::Garbage => "protocol-garbage",
            FailureKind::PanelLogin => "panel-login",
        }
    }
}

/// Identifies a session so that its end can be matched with its start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionEnd {
    /// sshd logs `Disconnected from user U A port P` from the session's child process: match on the endpoint.
    Endpoint(IpAddr, u16),
    /// sshd's monitor (the process that logged `Accepted`) logs PAM's `session closed`: match on its PID.
    Pid(u32),
    /// The panel's `RAMPART_AUTH_SESSION`.
    Panel(String),
}

/// What one journal entry says about authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Failure {
        service: Service,
        kind: FailureKind,
        source: IpAddr,
        user: Option<String>,
    },
    /// A session that proves the source is an administrator (SSH: accepted public key; panel: all factors).
    SessionOpened {
        service: Service,
        source: IpAddr,
        user: Option<String>,
        /// Ways its end may be reported.
        keys: Vec<SessionEnd>,
    },
    SessionClosed {
        service: Service,
        key: SessionEnd,
    },
}

impl Event {
    pub fn service(&self) -> Service {
        match self {
            Event::Failure { service, .. }
            | Event::SessionOpened { service, .. }
            | Event::SessionClosed { service, .. } => *service,
        }
    }
}

/// Parses one journal entry. `None` for anything that is not an authentication event we act on.
pub fn parse(entry: &Entry) -> Option<Event> {
    if let Some(id) = entry.field("MESSAGE_ID") {
        if let Some(event) = parse_panel(entry, id) {
            return Some(event);
        }
    }
    if entry.identifier() == Some("sshd") {
        return parse_sshd(entry.message()?, entry.pid());
    }
    None
}

fn parse_panel(entry: &Entry, id: &str) -> Option<Event> {
    if entry.field(authlog::FIELD_SERVICE) != Some(authlog::SERVICE_PANEL) {
        return None;
    }
    let source = || address(entry.field(authlog::FIELD_REMOTE_ADDR)?);
    let user = entry
        .field(authlog::FIELD_USER)
        .filter(|u| !u.is_empty())
        .map(bounded_user);
    let result = entry.field(authlog::FIELD_RESULT);
    let session = entry
        .field(authlog::FIELD_SESSION)
        .filter(|s| !s.is_empty() && s.len() <= 256);
    match id {
        authlog::MESSAGE_ID_AUTH_FAILED if result == Some(authlog::RESULT_FAILURE) => {
            Some(Event::Failure {
                service: Service::Panel,
                kind: FailureKind::PanelLogin,
                source: source()?,
                user,
            })
        }
        authlog::MESSAGE_ID_SESSION_OPENED if result == Some(authlog::RESULT_SUCCESS) => {
            Some(Event::SessionOpened {
                service: Service::Panel,
                source: source()?,
                user,
                keys: vec![SessionEnd::Panel(session?.to_owned())],
            })
        }
        authlog::MESSAGE_ID_SESSION_CLOSED => Some(Event::SessionClosed {
            service: Service::Panel,
            key: SessionEnd::Panel(session?.to_owned()),
        }),
        _ => None,
    }
}

/// Parses one sshd `MESSAGE`; `pid` is the logging process (for PAM's session-closed line).
pub fn parse_sshd(message: &str, pid: Option<u32>) -> Option<Event> {
    let line = message.strip_suffix(" [preauth]").unwrap_or(message);
    let line = line
        .strip_prefix("error: ")
        .or_else(|| line.strip_prefix("fatal: "))
        .unwrap_or(line);
    let failure = |kind, source, user| {
        Some(Event::Failure {
            service: Service::Ssh,
            kind,
            source,
            user,
        })
    };

    if let Some(rest) = line.strip_prefix("Failed ") {
        let (method, rest) = rest.split_once(" for ")?;
        if method == "none" || method.contains(' ') {
            return None;
        }
        let (user, source, _) = user_from_addr_port(rest)?;
        let kind = if method == "publickey" {
            FailureKind::KeyRejected
        } else {
            FailureKind::BadCredentials
        };
        return failure(kind, source, Some(user));
    }
    if let Some(rest) = line.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ")?;
        if method != "publickey" {
            return None;
        }
        let (user, source, port) = user_from_addr_port(rest)?;
        let mut keys = vec![SessionEnd::Endpoint(source, port)];
        keys.extend(pid.map(SessionEnd::Pid));
        return Some(Event::SessionOpened {
            service: Service::Ssh,
            source,
            user: Some(user),
            keys,
        });
    }
    if let Some(rest) = line.strip_prefix("Invalid user ") {
        let (user, tail) = rest.rsplit_once(" from ")?;
        let (source, _) = addr_port(tail)?;
        return failure(FailureKind::InvalidUser, source, Some(bounded_user(user)));
    }
    if let Some(rest) = line.strip_prefix("maximum authentication attempts exceeded for ") {
        let (user, source, _) = user_from_addr_port(rest)?;
        return failure(FailureKind::MaxAuthTries, source, Some(user));
    }
    if let Some(rest) = line.strip_prefix("Timeout before authentication for ") {
        let (source, _) = addr_port(rest)?;
        return failure(FailureKind::PreauthProbe, source, None);
    }
    if let Some(rest) = line.strip_prefix("Unable to negotiate with ") {
        let (remote, _) = rest.split_once(": no matching ")?;
        let (source, _) = addr_port(remote)?;
        return failure(FailureKind::Garbage, source, None);
    }
    for prefix in [
        "Connection closed by ",
        "Connection reset by ",
        "Disconnected from ",
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return match remote_id(rest)? {
                (Preamble::User(_), source, port) => Some(Event::SessionClosed {
                    service: Service::Ssh,
                    key: SessionEnd::Endpoint(source, port),
                }),
                (Preamble::None, source, _) => failure(FailureKind::PreauthProbe, source, None),
                (Preamble::Authenticating(user) | Preamble::Invalid(user), source, _) => {
                    failure(FailureKind::PreauthDisconnect, source, Some(user))
                }
            };
        }
    }
    if line.starts_with("pam_unix(sshd:session): session closed for user ") {
        return Some(Event::SessionClosed {
            service: Service::Ssh,
            key: SessionEnd::Pid(pid?),
        });
    }
    // `TAG: Connection from REMOTE: reason` — sshpkt_fatal's generic form (`banner exchange`, `ssh_dispatch_run_fatal`).
    if let Some((tag, rest)) = line.split_once(": Connection from ") {
        if tag.is_empty() || tag.len() > 64 || tag.contains(':') {
            return None;
        }
        let (remote, _) = rest.split_once(": ")?;
        return match remote_id(remote)? {
            (Preamble::User(_), _, _) => None,
            (_, source, _) => failure(FailureKind::Garbage, source, None),
        };
    }
    // Older OpenSSH forms, still seen on mixed fleets.
    if let Some(rest) = line.strip_prefix("Did not receive identification string from ") {
        let (source, _) = addr_port(rest)?;
        return failure(FailureKind::PreauthProbe, source, None);
    }
    if let Some(rest) = line.strip_prefix("Bad protocol version identification ") {
        let (_, tail) = rest.rsplit_once(" from ")?;
        let (source, _) = addr_port(tail)?;
        return failure(FailureKind::Garbage, source, None);
    }
    None
}

/// Who sshd says it was talking to (`sshpkt_fmt_connection_id`).
#[derive(Debug, PartialEq, Eq)]
enum Preamble {
    None,
    Authenticating(String),
    Invalid(String),
    /// Authenticated: the session's own lines.
    User(String),
}

/// `[authenticating user U |invalid user U |user U ]A port P`, parsed from the right.
fn remote_id(text: &str) -> Option<(Preamble, IpAddr, u16)> {
    let mut parts = text.rsplitn(4, ' ');
    let port = parts.next()?.parse().ok()?;
    if parts.next()? != "port" {
        return None;
    }
    let source = address(parts.next()?)?;
    let preamble = match parts.next() {
        None => Preamble::None,
        Some(p) => {
            if let Some(u) = p.strip_prefix("authenticating user ") {
                Preamble::Authenticating(bounded_user(u))
            } else if let Some(u) = p.strip_prefix("invalid user ") {
                Preamble::Invalid(bounded_user(u))
            } else if let Some(u) = p.strip_prefix("user ") {
                Preamble::User(bounded_user(u))
            } else {
                return None;
            }
        }
    };
    Some((preamble, source, port))
}

/// `[invalid user ]U from A port P ssh2[: extra]`: the last ` from ` is sshd's (the extra part is sshd's too).
fn user_from_addr_port(text: &str) -> Option<(String, IpAddr, u16)> {
    let (user, tail) = text.rsplit_once(" from ")?;
    let tail = tail.split_once(": ").map_or(tail, |(t, _)| t);
    let tail = tail.strip_suffix(" ssh2")?;
    let (source, port) = addr_port(tail)?;
    let user = user.strip_prefix("invalid user ").unwrap_or(user);
    Some((bounded_user(user), source, port))
}

/// Exactly `A port P`.
fn addr_port(text: &str) -> Option<(IpAddr, u16)> {
    let mut parts = text.split(' ');
    let source = address(parts.next()?)?;
    if parts.next()? != "port" {
        return None;
    }
    let port = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((source, port))
}

/// An address as std parses it; IPv4-mapped IPv6 (`::ffff:192.0.2.1`) becomes the IPv4 address, which is what the
/// firewall's v4 set holds.
pub fn address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// User names are the client's text: kept for the audit record, bounded in size.
fn bounded_user(user: &str) -> String {
    user.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
