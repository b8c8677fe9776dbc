//! The hash chain: what exactly is hashed, so that anyone can re-verify the log without this program.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(n))`, with `hash(0)` = 32 zero bytes. `canonical(n)` is the compact
//! JSON array `[seq, time_us, actor, peer, sender, action, target, outcome, details]` where strings are JSON
//! strings (serde_json's escaping) and `details` is the record's canonical JSON object (keys sorted at every
//! level, no whitespace), embedded as-is. `seq` is inside the hashed bytes, so moving a record breaks the chain.
//!
//! What the chain alone proves: no record was edited, inserted, deleted or moved *before the head*. What it cannot
//! prove on its own: that the head is the real one — records cut from the end, or a chain recomputed from some
//! record on, still verify. The daemon catches a tail cut while it runs (verify compares with the head it
//! committed); across restarts the witnesses are outside the file: every record's hash is in the journal
//! (`RAMPART_AUDIT_HASH`), and `verify` returns count + head hash for monitoring to compare over time.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const GENESIS: [u8; 32] = [0; 32];

/// The hashed fields of one record.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: u64,
    pub time_us: i64,
    pub actor: &'a str,
    pub peer: &'a str,
    pub sender: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub details: &'a str,
}

/// Appends the canonical bytes of `f` to `out`.
pub fn canonical(f: &Fields<'_>, out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(f.seq.to_string().as_bytes());
    out.push(b',');
    out.extend_from_slice(f.time_us.to_string().as_bytes());
    for s in [f.actor, f.peer, f.sender, f.action, f.target, f.outcome] {
        out.push(b',');
        push_json_string(s, out);
    }
    out.push(b',');
    out.extend_from_slice(f.details.as_bytes());
    out.push(b']');
}

/// The link hash of `f` after `prev`. `scratch` is reused between calls to avoid allocating per record.
pub fn link(prev: &[u8; 32], f: &Fields<'_>, scratch: &mut Vec<u8>) -> [u8; 32] {
    scratch.clear();
    canonical(f, scratch);
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&scratch[..]);
    h.finalize().into()
}

fn push_json_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Parses caller-supplied details into canonical text: must be a JSON object; keys sorted at every level.
pub fn canonical_details(text: &str) -> Result<String, String> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("details is not valid JSON: {e}"))?;
    if !value.is_object() {
        return Err("details must be a JSON object, e.g. {\"port\": 8080}".to_owned());
    }
    let mut out = Vec::with_capacity(text.len());
    write_canonical(&value, &mut out);
    String::from_utf8(out).map_err(|e| format!("details is not UTF-8: {e}"))
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(key, out);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(details: &str) -> Fields<'_> {
        Fields {
            seq: 1,
            time_us: 1_700_000_000_000_000,
            actor: "root@console",
            peer: "uid=0 pid=1",
            sender: "uid=0 pid=1",
            action: "firewall.open",
            target: "tcp/\"8080\"",
            outcome: "allowed",
            details,
        }
    }

    #[test]
    fn canonical_bytes_are_the_documented_json_array() {
        let mut out = Vec::new();
        canonical(&fields("{\"a\":1}"), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[1,1700000000000000,"root@console","uid=0 pid=1","uid=0 pid=1","firewall.open","tcp/\"8080\"","allowed",{"a":1}]"#
        );
    }

    #[test]
    fn link_matches_an_independent_sha256() {
        let mut scratch = Vec::new();
        let f = fields("{}");
        let got = link(&GENESIS, &f, &mut scratch);
        let mut bytes = GENESIS.to_vec();
        canonical(&f, &mut bytes);
        let want: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(got, want);
        assert_ne!(
            link(&got, &f, &mut scratch),
            got,
            "the previous hash is part of the input"
        );
    }

    #[test]
    fn details_are_sorted_compact_objects() {
        assert_eq!(
            canonical_details(r#"{ "b": [ {"z":1,"y":2} ], "a": "x" }"#).unwrap(),
            r#"{"a":"x","b":[{"y":2,"z":1}]}"#
        );
        assert_eq!(canonical_details("").unwrap(), "{}");
        assert!(canonical_details("[1,2]")
            .unwrap_err()
            .contains("JSON object"));
        assert!(canonical_details("{\"a\":")
            .unwrap_err()
            .contains("not valid JSON"));
    }
}
