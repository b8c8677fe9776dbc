//! The bytes a signature covers: the `signed` object in canonical JSON.
//!
//! TUF specifies OLPC canonical JSON (keys sorted by bytes, no insignificant whitespace, only integers, strings
//! escaped minimally); `olpc-cjson` is a serde_json formatter for exactly that, used by tough (Bottlerocket's
//! TUF client), so we do not hand-write it. Rejected: signing the file's bytes as written (then every tool that
//! re-serialises breaks the signature) and JCS/RFC 8785 (not what TUF implementations speak).
//!
//! The verifier canonicalises the `signed` value it *parsed*, and uses that same value afterwards: what was
//! verified is what is used, whatever whitespace, key order or duplicate keys the file had.

use serde::Serialize;

/// Canonical JSON of any serialisable value. Fails only for values canonical JSON cannot hold (floats).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_compact_and_stable() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1, "a": {"z": "x\ny", "c": [3, 2]}, "_type": "root" }"#)
                .unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"_type":"root","a":{"c":[3,2],"z":"x\ny"},"b":1}"#).unwrap();
        let ca = to_vec(&a).unwrap();
        assert_eq!(ca, to_vec(&b).unwrap());
        // OLPC canonical JSON leaves control characters other than " and \ unescaped.
        assert_eq!(
            ca,
            b"{\"_type\":\"root\",\"a\":{\"c\":[3,2],\"z\":\"x\ny\"},\"b\":1}"
        );
        // Stable: canonicalising the canonical form changes nothing. (Not for strings with raw control
        // characters, which OLPC leaves unescaped and strict JSON parsers refuse; the verifier never re-parses
        // canonical bytes, it canonicalises what it parsed from the file.)
        let plain = serde_json::json!({"b": [1, {"y": "é\\\"", "x": -3}], "a": ""});
        let once = to_vec(&plain).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&once).unwrap();
        assert_eq!(to_vec(&again).unwrap(), once);
        assert_eq!(
            once,
            "{\"a\":\"\",\"b\":[1,{\"x\":-3,\"y\":\"é\\\\\\\"\"}]}".as_bytes()
        );
    }

    #[test]
    fn floats_are_refused() {
        assert!(to_vec(&serde_json::json!({"x": 1.5})).is_err());
    }
}
