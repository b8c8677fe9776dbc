//! The journal entries rampart-guardd bans from (the contract is `rampart_interfaces::authlog`): one per failed
//! login step, and one per session opened or closed. Structured fields, so no one has to parse `MESSAGE`. The
//! `log` macros take field names as identifiers; the test below holds them to the contract's constants.

use std::net::IpAddr;

use rampart_interfaces::authlog::{
    MESSAGE_ID_AUTH_FAILED, MESSAGE_ID_SESSION_CLOSED, MESSAGE_ID_SESSION_OPENED, RESULT_FAILURE,
    RESULT_SUCCESS, SERVICE_PANEL,
};

/// A user name as logged: what the client typed, bounded and without control characters.
fn shown(user: &str) -> String {
    user.chars().filter(|c| !c.is_control()).take(64).collect()
}

pub fn failed(source: IpAddr, user: &str, reason: &str) {
    let user = shown(user);
    let addr = source.to_string();
    log::warn!(
        MESSAGE_ID = MESSAGE_ID_AUTH_FAILED, RAMPART_AUTH_SERVICE = SERVICE_PANEL,
        RAMPART_AUTH_RESULT = RESULT_FAILURE, RAMPART_REMOTE_ADDR = addr.as_str(),
        RAMPART_AUTH_USER = user.as_str(), RAMPART_AUTH_REASON = reason;
        "panel login failed for {user} from {addr} ({reason})"
    );
}

pub fn opened(source: IpAddr, user: &str, session: &str) {
    let addr = source.to_string();
    log::info!(
        MESSAGE_ID = MESSAGE_ID_SESSION_OPENED, RAMPART_AUTH_SERVICE = SERVICE_PANEL,
        RAMPART_AUTH_RESULT = RESULT_SUCCESS, RAMPART_REMOTE_ADDR = addr.as_str(),
        RAMPART_AUTH_USER = user, RAMPART_AUTH_SESSION = session;
        "panel session {session} opened for {user} from {addr}"
    );
}

pub fn closed(source: IpAddr, user: &str, session: &str) {
    let addr = source.to_string();
    log::info!(
        MESSAGE_ID = MESSAGE_ID_SESSION_CLOSED, RAMPART_AUTH_SERVICE = SERVICE_PANEL,
        RAMPART_REMOTE_ADDR = addr.as_str(), RAMPART_AUTH_USER = user, RAMPART_AUTH_SESSION = session;
        "panel session {session} closed for {user}"
    );
}

#[cfg(test)]
mod tests {
    use rampart_interfaces::authlog::*;

    #[test]
    fn field_names_are_the_contracts() {
        // The identifiers used in the macros above, spelled out.
        assert_eq!(FIELD_SERVICE, "RAMPART_AUTH_SERVICE");
        assert_eq!(FIELD_RESULT, "RAMPART_AUTH_RESULT");
        assert_eq!(FIELD_REMOTE_ADDR, "RAMPART_REMOTE_ADDR");
        assert_eq!(FIELD_USER, "RAMPART_AUTH_USER");
        assert_eq!(FIELD_REASON, "RAMPART_AUTH_REASON");
        assert_eq!(FIELD_SESSION, "RAMPART_AUTH_SESSION");
    }
}
