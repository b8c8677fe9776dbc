//! Detached OpenPGP signatures over canonical JSON, and the threshold count.
//!
//! The count is of *distinct primary keys listed for the role*. A signature counts when: its `keyid` is listed
//! for the role and not already counted; `sig` is exactly one signature packet of type binary; it verifies with a
//! subkey of that very certificate that, at the signature's creation time, is alive, unrevoked and
//! signing-capable under sequoia's standard policy (which also refuses SHA-1 and other broken algorithms), with
//! the certificate itself alive and unrevoked then. Certificate state is only ever a further condition on a
//! cryptographically good signature, never a substitute for one. Rejected: sequoia's streaming
//! `DetachedVerifier` (it answers "some good signature", while we must count signers per role).

use std::collections::BTreeSet;
use std::time::SystemTime;

use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::serialize::Serialize as _;
use openpgp::types::{RevocationStatus, SignatureType};
use openpgp::{armor, Packet};
use sequoia_openpgp as openpgp;

use crate::error::{pgp, Error};
use crate::keys::{Keyring, SigningKey};
use crate::metadata::{RoleKeys, SignatureEntry};
use crate::role::Role;

/// Longest armored signature we parse (an Ed25519 signature is ~250 bytes, RSA-4096 ~900).
const MAX_SIGNATURE_LEN: usize = 8 * 1024;

/// Signs `data` (canonical JSON) with `key` at `time`: the `SignatureEntry` of the envelope.
pub fn sign(
    role: Role,
    key: &SigningKey,
    data: &[u8],
    time: SystemTime,
) -> Result<SignatureEntry, Error> {
    let keyid = key.key_id();
    let fail = |e: openpgp::anyhow::Error| Error::Sign {
        role,
        keyid: keyid.clone(),
        source: pgp(e),
    };
    let mut keypair = key.keypair(time)?;
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_signature_creation_time(time)
        .map_err(fail)?
        .sign_message(&mut keypair, data)
        .map_err(fail)?;
    Ok(SignatureEntry {
        keyid: keyid.clone(),
        sig: armor_signature(sig).map_err(fail)?,
    })
}

/// An ASCII-armored signature block (`-----BEGIN PGP SIGNATURE-----`), what `sqv` and `gpg --verify` read.
pub(crate) fn armor_signature(sig: openpgp::packet::Signature) -> openpgp::Result<String> {
    let mut writer = armor::Writer::new(Vec::new(), armor::Kind::Signature)?;
    Packet::from(sig).serialize(&mut writer)?;
    let armored = writer.finalize()?;
    Ok(String::from_utf8_lossy(&armored).into_owned())
}

/// Checks that `signatures` over `data` meet `keys`' threshold. Returns the newest creation time among the
/// signatures that counted (a lower bound for the current time, for the caller's trusted-time floor).
pub fn verify_threshold(
    role: Role,
    signer: Role,
    data: &[u8],
    signatures: &[SignatureEntry],
    keys: &RoleKeys,
    keyring: &Keyring,
) -> Result<SystemTime, Error> {
    let policy = StandardPolicy::new();
    let mut counted = BTreeSet::new();
    let mut rejected = Vec::new();
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in signatures {
        if !keys.keyids.iter().any(|k| k == &entry.keyid) {
            rejected.push(format!("{}: not a {signer} key", entry.keyid));
            continue;
        }
        if counted.contains(&entry.keyid) {
            rejected.push(format!("{}: counted already", entry.keyid));
            continue;
        }
        let Some(cert) = keyring.get(&entry.keyid) else {
            // Root validation makes every listed key present; be safe anyway.
            rejected.push(format!("{}: no certificate", entry.keyid));
            continue;
        };
        match verify_one(&policy, cert, &entry.sig, data) {
            Ok(created) => {
                counted.insert(entry.keyid.clone());
                newest = newest.max(created);
            }
            Err(reason) => rejected.push(format!("{}: {reason}", entry.keyid)),
        }
    }
    if counted.len() < keys.threshold as usize || keys.threshold == 0 {
        return Err(Error::Threshold {
            role,
            signer,
            valid: counted.len(),
            threshold: keys.threshold,
            rejected,
        });
    }
    Ok(newest)
}

/// One signature against one certificate; the reason it does not count otherwise.
fn verify_one(
    policy: &dyn Policy,
    cert: &openpgp::Cert,
    armored: &str,
    data: &[u8],
) -> Result<SystemTime, String> {
    if armored.len() > MAX_SIGNATURE_LEN {
        return Err("signature too long".into());
    }
    let sig = match openpgp::PacketPile::from_bytes(armored.as_bytes()) {
        Ok(pile) => {
            let mut packets = pile.into_children();
            match (packets.next(), packets.next()) {
                (Some(Packet::Signature(sig)), None) => sig,
                _ => return Err("not exactly one signature packet".into()),
            }
        }
        Err(e) => return Err(format!("unparsable signature: {e}")),
    };
    if sig.typ() != SignatureType::Binary {
        return Err(format!("signature type {} is not binary", sig.typ()));
    }
    let created = sig
        .signature_creation_time()
        .ok_or("signature has no creation time")?;
    policy
        .signature(&sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| format!("signature refused by policy: {e}"))?;
    let valid = cert
        .with_policy(policy, created)
        .map_err(|e| format!("certificate not valid at signing time: {e}"))?;
    valid
        .alive()
        .map_err(|e| format!("certificate not alive at signing time: {e}"))?;
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err("certificate revoked".into());
    }
    let issuers = sig.get_issuers();
    let mut last = String::from("no signing-capable subkey of this certificate made it");
    for ka in valid.keys().for_signing().alive().revoked(false) {
        let handle = ka.key().key_handle();
        if !issuers.is_empty() && !issuers.iter().any(|i| i.aliases(&handle)) {
            continue;
        }
        match sig.verify_message(ka.key(), data) {
            Ok(()) => return Ok(created),
            Err(e) => last = format!("bad signature: {e}"),
        }
    }
    Err(last)
}
