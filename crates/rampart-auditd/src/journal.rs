//! Every stored record also goes to the journal, with a stable `MESSAGE_ID` so it can be found and forwarded
//! (`journalctl MESSAGE_ID=0bae73be887748d6af653f8747600e1c`). The journal copy carries the chain hash, which makes
//! it an outside witness of the log's head: a chain rewritten from some record on no longer matches it.

use rampart_interfaces::audit::Appended;

use crate::store::Pending;

/// `MESSAGE_ID` of audit records in the journal.
pub const AUDIT_MESSAGE_ID: &str = "0bae73be887748d6af653f8747600e1c";

pub fn mirror(rec: &Pending, appended: &Appended) {
    log::info!(
        MESSAGE_ID = AUDIT_MESSAGE_ID,
        RAMPART_AUDIT_SEQ = appended.seq,
        RAMPART_AUDIT_HASH = appended.hash.as_str(),
        RAMPART_AUDIT_ACTOR = rec.actor.as_str(),
        RAMPART_AUDIT_PEER = rec.peer.as_str(),
        RAMPART_AUDIT_ACTION = rec.action.as_str(),
        RAMPART_AUDIT_TARGET = rec.target.as_str(),
        RAMPART_AUDIT_OUTCOME = rec.outcome.as_str();
        "audit #{}: {} {} {} {}",
        appended.seq,
        rec.actor,
        rec.action,
        rec.target,
        rec.outcome
    );
}
