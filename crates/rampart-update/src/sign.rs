//! Making signed envelopes: what the release tool writes and the tests feed the verifier.

use std::time::SystemTime;

use serde::Serialize;

use crate::canonical;
use crate::keys::SigningKey;
use crate::metadata::Envelope;
use crate::role::Role;
use crate::signature;
use crate::Error;

/// Signs `signed` with every key in `keys` at `time` and returns the envelope.
pub fn envelope<T: Serialize + Clone>(
    role: Role,
    signed: &T,
    keys: &[&SigningKey],
    time: SystemTime,
) -> Result<Envelope<T>, Error> {
    let bytes = canonical_bytes(role, signed)?;
    let signatures = keys
        .iter()
        .map(|k| signature::sign(role, k, &bytes, time))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Envelope {
        signed: signed.clone(),
        signatures,
    })
}

/// The file bytes of an envelope: pretty JSON for people (the signature covers the canonical form, not these).
pub fn to_file<T: Serialize>(envelope: &Envelope<T>) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(envelope).map_err(|source| Error::Json {
        what: "metadata".into(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Canonical JSON of a `signed` value.
pub fn canonical_bytes<T: Serialize>(role: Role, signed: &T) -> Result<Vec<u8>, Error> {
    canonical::to_vec(signed).map_err(|source| Error::Json {
        what: format!("{role} metadata"),
        source,
    })
}

/// The bytes a file's signatures cover: the canonical JSON of its `signed` member, whatever the file's role.
/// For checking a signature with standard OpenPGP tools (`rampart-release canonical`).
pub fn signed_bytes_of_file(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: "metadata file".into(),
            source,
        })?;
    canonical::to_vec(&envelope.signed).map_err(|source| Error::Json {
        what: "metadata file".into(),
        source,
    })
}
