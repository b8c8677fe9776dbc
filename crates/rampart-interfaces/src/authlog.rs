//! Journal fields Rampart's own services emit for authentication events, read by rampart-guardd.
//!
//! This is a contract like a D-Bus interface: rampart-webd (the panel) logs **one journal entry per login attempt
//! and per session start/end** with exactly these fields, and guardd bans sources of repeated failures from them.
//! Emit them as structured fields (with `log` key-values through `rampart_common::logging`, they become journal
//! fields), never only inside `MESSAGE` text:
//!
//! | field | value |
//! |---|---|
//! | `MESSAGE_ID` | [`MESSAGE_ID_AUTH_FAILED`], [`MESSAGE_ID_SESSION_OPENED`] or [`MESSAGE_ID_SESSION_CLOSED`] |
//! | `RAMPART_AUTH_SERVICE` | [`SERVICE_PANEL`] (the web panel and its JSON API) |
//! | `RAMPART_AUTH_RESULT` | [`RESULT_FAILURE`] or [`RESULT_SUCCESS`] (failure only with `MESSAGE_ID_AUTH_FAILED`) |
//! | `RAMPART_REMOTE_ADDR` | the client's IP address as the TCP peer shows it, v4 dotted or v6 (no port, no brackets) |
//! | `RAMPART_AUTH_USER` | the account name the client gave, if any (may be a name that does not exist) |
//! | `RAMPART_AUTH_REASON` | optional, for people: `bad-password`, `bad-totp`, `unknown-user`, `locked`… |
//! | `MESSAGE` | a human line, e.g. `panel login failed for alice from 192.0.2.7 (bad-totp)` |
//!
//! Example (failure): `MESSAGE_ID=4f1c2b0e9a7d4e4c8f7a5a3b2c1d0e9f RAMPART_AUTH_SERVICE=panel
//! RAMPART_AUTH_RESULT=failure RAMPART_REMOTE_ADDR=192.0.2.7 RAMPART_AUTH_USER=alice`.
//!
//! A session that passed every factor (password and TOTP) is logged with [`MESSAGE_ID_SESSION_OPENED`] and
//! `RESULT_SUCCESS`; while it is open guardd never bans its address (an admin must not lock themselves out by
//! mistyping in a second tab). End it with [`MESSAGE_ID_SESSION_CLOSED`] and the session's [`FIELD_SESSION`]
//! (an opaque id, never the token) so opened/closed pair up.
//!
//! guardd only believes these fields from the unit configured as the panel (`_SYSTEMD_UNIT`, which journald sets
//! and a client cannot forge), so a tenant cannot get an address banned by logging the same fields.

/// "Authentication failed": one failed login attempt (any factor).
pub const MESSAGE_ID_AUTH_FAILED: &str = "4f1c2b0e9a7d4e4c8f7a5a3b2c1d0e9f";
/// "Session opened": a login that passed every factor.
pub const MESSAGE_ID_SESSION_OPENED: &str = "8d2e6a1f3b7c4d59a0e1f2c3b4a59687";
/// "Session closed": logout or expiry of a session opened before.
pub const MESSAGE_ID_SESSION_CLOSED: &str = "c3a9e7b15d2f4a688e9b0c1d2e3f4a5b";

pub const FIELD_SERVICE: &str = "RAMPART_AUTH_SERVICE";
pub const FIELD_RESULT: &str = "RAMPART_AUTH_RESULT";
pub const FIELD_REMOTE_ADDR: &str = "RAMPART_REMOTE_ADDR";
pub const FIELD_USER: &str = "RAMPART_AUTH_USER";
pub const FIELD_REASON: &str = "RAMPART_AUTH_REASON";
/// Opaque session id pairing opened/closed entries (never the session token).
pub const FIELD_SESSION: &str = "RAMPART_AUTH_SESSION";

pub const SERVICE_PANEL: &str = "panel";
pub const RESULT_FAILURE: &str = "failure";
pub const RESULT_SUCCESS: &str = "success";
