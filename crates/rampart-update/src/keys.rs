//! OpenPGP keys: the public certificates root metadata pins, and the secret keys the release tool signs with.
//!
//! A key id is the certificate's *primary* fingerprint in lowercase hex. Signing happens with a signing-capable
//! subkey; thresholds count primary keys, so several subkeys of one certificate are one signer. Certificates are
//! generated with Curve25519 (Ed25519 signing subkey, certification-only primary): fast, small, and what every
//! current OpenPGP implementation verifies.

use std::collections::BTreeMap;
use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::KeyFlags;
use sequoia_openpgp as openpgp;

use crate::error::{pgp, Error};
use crate::metadata::{Key, KeyVal, Root};
use crate::role::Role;

/// A key id as metadata spells it: the primary fingerprint, lowercase hex.
pub fn key_id(cert: &Cert) -> String {
    hex::encode(cert.fingerprint().as_bytes())
}

/// The `keys` entry of root metadata for a certificate (public parts only, whatever `cert` holds).
pub fn root_key(cert: &Cert) -> Result<Key, Error> {
    let armored = cert.armored().to_vec().map_err(|e| Error::Certificate {
        keyid: key_id(cert),
        source: pgp(e),
    })?;
    Ok(Key {
        keytype: "openpgp".to_owned(),
        scheme: "openpgp".to_owned(),
        keyval: KeyVal {
            public: String::from_utf8_lossy(&armored).into_owned(),
        },
    })
}

/// The certificates of a root, checked: each parses, is the fingerprint it is filed under, and is public only.
#[derive(Debug, Clone)]
pub struct Keyring {
    certs: BTreeMap<String, Cert>,
}

impl Keyring {
    pub fn from_root(root: &Root) -> Result<Keyring, Error> {
        let mut certs = BTreeMap::new();
        for (keyid, key) in &root.keys {
            if key.keytype != "openpgp" {
                return Err(Error::KeyType {
                    keyid: keyid.clone(),
                    found: key.keytype.clone(),
                });
            }
            let cert =
                Cert::from_bytes(key.keyval.public.as_bytes()).map_err(|e| Error::Certificate {
                    keyid: keyid.clone(),
                    source: pgp(e),
                })?;
            let fingerprint = key_id(&cert);
            if &fingerprint != keyid {
                return Err(Error::KeyIdMismatch {
                    keyid: keyid.clone(),
                    fingerprint,
                });
            }
            if cert.is_tsk() {
                return Err(Error::SecretInRoot {
                    keyid: keyid.clone(),
                });
            }
            certs.insert(keyid.clone(), cert);
        }
        Ok(Keyring { certs })
    }

    pub fn get(&self, keyid: &str) -> Option<&Cert> {
        self.certs.get(keyid)
    }
}

/// A public certificate as the release tool reads it from a `.cert.asc` file.
#[derive(Debug, Clone)]
pub struct PublicKey {
    cert: Cert,
}

impl PublicKey {
    /// Parses an armored certificate; refuses one carrying secret key material (it would end up in root.json).
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, Error> {
        let cert = Cert::from_bytes(bytes).map_err(|e| Error::Certificate {
            keyid: "(file)".into(),
            source: pgp(e),
        })?;
        if cert.is_tsk() {
            return Err(Error::SecretInRoot {
                keyid: key_id(&cert),
            });
        }
        Ok(PublicKey { cert })
    }

    pub fn key_id(&self) -> String {
        key_id(&self.cert)
    }

    /// The `keys` entry of root metadata.
    pub fn root_entry(&self) -> Result<Key, Error> {
        root_key(&self.cert)
    }

    pub fn armored(&self) -> Result<Vec<u8>, Error> {
        self.cert
            .armored()
            .to_vec()
            .map_err(|e| Error::Certificate {
                keyid: self.key_id(),
                source: pgp(e),
            })
    }
}

/// A secret key that signs metadata: a certificate with secret signing-subkey material.
#[derive(Debug, Clone)]
pub struct SigningKey {
    cert: Cert,
}

impl SigningKey {
    #[cfg(test)]
    pub(crate) fn from_cert(cert: Cert) -> SigningKey {
        SigningKey { cert }
    }

    /// The certificate with its secret parts.
    #[cfg(test)]
    pub(crate) fn tsk(&self) -> &Cert {
        &self.cert
    }

    /// Parses an armored (or binary) transferable secret key.
    pub fn from_bytes(bytes: &[u8]) -> Result<SigningKey, Error> {
        let cert = Cert::from_bytes(bytes).map_err(|e| Error::SigningKey {
            reason: format!("not an OpenPGP key: {e}"),
        })?;
        let key = SigningKey { cert };
        key.keypair(SystemTime::now())?;
        Ok(key)
    }

    pub fn key_id(&self) -> String {
        key_id(&self.cert)
    }

    /// The public certificate, for root metadata and for `sqv`/`gpg`.
    pub fn cert(&self) -> Cert {
        self.cert.clone().strip_secret_key_material()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { cert: self.cert() }
    }

    /// The armored secret key (the file written mode 0600 by the release tool).
    pub fn armored_secret(&self) -> Result<Vec<u8>, Error> {
        self.cert
            .as_tsk()
            .armored()
            .to_vec()
            .map_err(|e| Error::SigningKey {
                reason: e.to_string(),
            })
    }

    /// A keypair of a subkey that is valid for signing at `time`.
    pub(crate) fn keypair(&self, time: SystemTime) -> Result<openpgp::crypto::KeyPair, Error> {
        let policy = StandardPolicy::new();
        let ka = self
            .cert
            .keys()
            .with_policy(&policy, time)
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .secret()
            .next()
            .ok_or_else(|| Error::SigningKey {
                reason: format!(
                    "{} has no live, unrevoked signing subkey with secret material",
                    self.key_id()
                ),
            })?;
        ka.key()
            .clone()
            .into_keypair()
            .map_err(|e| Error::SigningKey {
                reason: format!(
                    "{}: {e} (encrypted secret keys are not supported)",
                    self.key_id()
                ),
            })
    }
}

/// Makes a new key for `role`: a certification-only Ed25519 primary with one Ed25519 signing subkey, user id
/// `NAME (rampart ROLE key)`. `created` is usually now; tests pass other times. Also returns the armored
/// revocation certificate, to be stored apart from the key (offline) for the day the key is lost.
pub fn generate(
    name: &str,
    role: Role,
    created: SystemTime,
) -> Result<(SigningKey, Vec<u8>), Error> {
    let (cert, revocation) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(created)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(format!("{name} (rampart {role} key)"))
        .add_signing_subkey()
        .generate()
        .map_err(|e| Error::SigningKey {
            reason: format!("key generation failed: {e}"),
        })?;
    let mut armored = openpgp::armor::Writer::new(Vec::new(), openpgp::armor::Kind::Signature)
        .map_err(|e| Error::SigningKey {
            reason: e.to_string(),
        })?;
    openpgp::serialize::Serialize::serialize(&openpgp::Packet::from(revocation), &mut armored)
        .map_err(|e| Error::SigningKey {
            reason: e.to_string(),
        })?;
    let revocation = armored.finalize().map_err(|e| Error::SigningKey {
        reason: e.to_string(),
    })?;
    Ok((SigningKey { cert }, revocation))
}
