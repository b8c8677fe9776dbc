//! Every refusal of the verifier, each with metadata that is right except for the one thing under test.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::types::{KeyFlags, SignatureType};
use sequoia_openpgp as openpgp;

use super::*;
use crate::digest::hashes;
use crate::keys::{generate, root_key, SigningKey};
use crate::metadata::{kind, Hashes, ReleaseInfo, SignatureEntry, TargetCustom, TargetFile};
use crate::sign;

const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

fn key(name: &str, role: Role) -> SigningKey {
    generate(name, role, t0() - DAY).unwrap().0
}

struct Fx {
    root: Vec<SigningKey>,
    targets: SigningKey,
    snapshot: SigningKey,
    timestamp: SigningKey,
    stranger: SigningKey,
}

struct Repo {
    root: Vec<u8>,
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
}

fn role_keys(keys: &[&SigningKey], threshold: u32) -> RoleKeys {
    RoleKeys {
        keyids: keys.iter().map(|k| k.key_id()).collect(),
        threshold,
    }
}

fn expires(after: Duration) -> UtcTime {
    UtcTime::new(t0() + after)
}

fn file(bytes: &[u8]) -> MetaFile {
    MetaFile {
        version: 0,
        length: Some(bytes.len() as u64),
        hashes: Some(hashes(bytes)),
    }
}

impl Fx {
    fn new() -> Fx {
        Fx {
            root: (0..3)
                .map(|i| key(&format!("root{i}"), Role::Root))
                .collect(),
            targets: key("targets", Role::Targets),
            snapshot: key("snapshot", Role::Snapshot),
            timestamp: key("timestamp", Role::Timestamp),
            stranger: key("stranger", Role::Timestamp),
        }
    }

    fn root_refs(&self) -> Vec<&SigningKey> {
        self.root.iter().collect()
    }

    /// Root `version` with `root_keys` (threshold 2) and the fixture's other role keys.
    fn root_meta(&self, version: u64, root_keys: &[&SigningKey]) -> Root {
        let mut all: Vec<&SigningKey> = root_keys.to_vec();
        all.extend([&self.targets, &self.snapshot, &self.timestamp]);
        let keys = all
            .iter()
            .map(|k| (k.key_id(), root_key(&k.cert()).unwrap()))
            .collect();
        let mut roles = BTreeMap::new();
        roles.insert("root".to_owned(), role_keys(root_keys, 2));
        roles.insert("targets".to_owned(), role_keys(&[&self.targets], 1));
        roles.insert("snapshot".to_owned(), role_keys(&[&self.snapshot], 1));
        roles.insert("timestamp".to_owned(), role_keys(&[&self.timestamp], 1));
        Root {
            common: Common::new(Role::Root, version, expires(365 * DAY)),
            consistent_snapshot: true,
            keys,
            roles,
        }
    }

    fn targets_meta(&self, version: u64) -> Targets {
        let mut targets = BTreeMap::new();
        for (name, k) in [
            ("rootfs.erofs.zst", kind::ROOTFS),
            ("vmlinuz", kind::KERNEL),
            ("initrd.img", kind::INITRD),
            ("rootfs.chunks.json", kind::CHUNK_INDEX),
        ] {
            targets.insert(
                name.to_owned(),
                TargetFile {
                    length: name.len() as u64,
                    hashes: hashes(name.as_bytes()),
                    custom: TargetCustom { kind: k.to_owned() },
                },
            );
        }
        Targets {
            common: Common::new(Role::Targets, version, expires(90 * DAY)),
            targets,
            custom: ReleaseInfo {
                version: "1.2.0".into(),
                min_installed_version: "1.0.0".into(),
                variant: "x86_64".into(),
            },
        }
    }

    fn snapshot_meta(&self, version: u64, targets: &[u8], targets_version: u64) -> Snapshot {
        Snapshot {
            common: Common::new(Role::Snapshot, version, expires(30 * DAY)),
            meta: BTreeMap::from([(
                "targets.json".to_owned(),
                MetaFile {
                    version: targets_version,
                    ..file(targets)
                },
            )]),
        }
    }

    fn timestamp_meta(&self, version: u64, snapshot: &[u8], snapshot_version: u64) -> Timestamp {
        Timestamp {
            common: Common::new(Role::Timestamp, version, expires(7 * DAY)),
            meta: BTreeMap::from([(
                "snapshot.json".to_owned(),
                MetaFile {
                    version: snapshot_version,
                    ..file(snapshot)
                },
            )]),
        }
    }

    fn repo_from(&self, targets: &Targets, snapshot_version: u64, timestamp_version: u64) -> Repo {
        let targets_bytes = signed(Role::Targets, targets, &[&self.targets]);
        let snapshot = self.snapshot_meta(snapshot_version, &targets_bytes, targets.common.version);
        let snapshot_bytes = signed(Role::Snapshot, &snapshot, &[&self.snapshot]);
        let timestamp = self.timestamp_meta(timestamp_version, &snapshot_bytes, snapshot_version);
        Repo {
            root: signed(
                Role::Root,
                &self.root_meta(1, &self.root_refs()),
                &self.root_refs(),
            ),
            timestamp: signed(Role::Timestamp, &timestamp, &[&self.timestamp]),
            snapshot: snapshot_bytes,
            targets: targets_bytes,
        }
    }

    fn repo(&self) -> Repo {
        self.repo_from(&self.targets_meta(1), 1, 1)
    }
}

fn signed<T: serde::Serialize + Clone>(role: Role, value: &T, keys: &[&SigningKey]) -> Vec<u8> {
    signed_at(role, value, keys, t0())
}

fn signed_at<T: serde::Serialize + Clone>(
    role: Role,
    value: &T,
    keys: &[&SigningKey],
    at: SystemTime,
) -> Vec<u8> {
    sign::to_file(&sign::envelope(role, value, keys, at).unwrap()).unwrap()
}

fn trusted(root: &[u8]) -> Trusted {
    trusted_with(root, t0() - DAY, KnownVersions::default())
}

fn trusted_with(root: &[u8], floor: SystemTime, known: KnownVersions) -> Trusted {
    Trusted::new(root, floor, known, Limits::default()).unwrap()
}

fn apply(t: &mut Trusted, repo: &Repo) -> Result<(), Error> {
    t.update_timestamp(&repo.timestamp)?;
    t.update_snapshot(&repo.snapshot)?;
    t.update_targets(&repo.targets)
}

/// Replaces the signatures of an envelope file.
fn with_signatures(bytes: &[u8], signatures: Vec<SignatureEntry>) -> Vec<u8> {
    let mut env: Envelope<serde_json::Value> = serde_json::from_slice(bytes).unwrap();
    env.signatures = signatures;
    serde_json::to_vec(&env).unwrap()
}

fn signatures_of(bytes: &[u8]) -> Vec<SignatureEntry> {
    serde_json::from_slice::<Envelope<serde_json::Value>>(bytes)
        .unwrap()
        .signatures
}

fn canonical_of(bytes: &[u8]) -> Vec<u8> {
    sign::signed_bytes_of_file(bytes).unwrap()
}

/// A signature made with the `nth` signing subkey of `cert`, ignoring whether it may sign (for the tests that
/// check the verifier does not).
fn raw_sign(cert: &Cert, nth: usize, at: SystemTime, data: &[u8]) -> SignatureEntry {
    let key = cert
        .keys()
        .subkeys()
        .secret()
        .nth(nth)
        .unwrap()
        .key()
        .clone();
    let mut keypair = key.into_keypair().unwrap();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_signature_creation_time(at)
        .unwrap()
        .sign_message(&mut keypair, data)
        .unwrap();
    SignatureEntry {
        keyid: hex::encode(cert.fingerprint().as_bytes()),
        sig: crate::signature::armor_signature(sig).unwrap(),
    }
}

#[test]
fn happy_path_and_floor_rises_to_signature_time() {
    let fx = Fx::new();
    let repo = fx.repo();
    let mut t = trusted(&repo.root);
    apply(&mut t, &repo).unwrap();
    assert_eq!(t.floor(), t0());
    assert_eq!(
        t.known_versions(),
        KnownVersions {
            timestamp: 1,
            snapshot: 1,
            targets: 1
        }
    );
    let release = t.release().unwrap();
    assert_eq!(release.version.to_string(), "1.2.0");
    assert_eq!(release.kernel.name, "vmlinuz");
    assert!(release.rootfs.repo_path().starts_with("targets/"));
    // A higher floor from the caller is kept.
    let mut t = trusted_with(
        &repo.root,
        t0() + Duration::from_secs(60),
        KnownVersions::default(),
    );
    apply(&mut t, &repo).unwrap();
    assert_eq!(t.floor(), t0() + Duration::from_secs(60));
}

#[test]
fn reformatted_files_still_verify_but_edits_do_not() {
    let fx = Fx::new();
    let repo = fx.repo();
    // Whitespace and key order are not signed: the canonical form is.
    let v: serde_json::Value = serde_json::from_slice(&repo.timestamp).unwrap();
    let compact = serde_json::to_vec(&v).unwrap();
    trusted(&repo.root).update_timestamp(&compact).unwrap();
    // An unknown field is ignored by the types but covered by the signature.
    let mut v: serde_json::Value = serde_json::from_slice(&repo.timestamp).unwrap();
    v["signed"]["x-note"] = "added later".into();
    let edited = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&edited),
        Err(Error::Threshold {
            role: Role::Timestamp,
            valid: 0,
            ..
        })
    ));
}

#[test]
fn rollback_of_each_role_is_refused() {
    let fx = Fx::new();
    let repo = fx.repo_from(&fx.targets_meta(3), 3, 3);
    let known = |timestamp, snapshot, targets| KnownVersions {
        timestamp,
        snapshot,
        targets,
    };
    let floor = t0() - DAY;
    let mut t = trusted_with(&repo.root, floor, known(4, 0, 0));
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::Rollback {
            role: Role::Timestamp,
            trusted: 4,
            new: 3
        })
    ));
    // The timestamp itself names an old snapshot.
    let mut t = trusted_with(&repo.root, floor, known(0, 4, 0));
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::Rollback {
            role: Role::Snapshot,
            trusted: 4,
            new: 3
        })
    ));
    // The snapshot names an old targets.
    let mut t = trusted_with(&repo.root, floor, known(0, 0, 4));
    t.update_timestamp(&repo.timestamp).unwrap();
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::Rollback {
            role: Role::Targets,
            trusted: 4,
            new: 3
        })
    ));
    // Same versions again are fine (nothing new published).
    let mut t = trusted_with(&repo.root, floor, known(3, 3, 3));
    apply(&mut t, &repo).unwrap();
}

#[test]
fn snapshot_and_targets_rollback_checked_on_the_files_too() {
    let fx = Fx::new();
    // A timestamp claiming snapshot 5 while the served snapshot file says 2: a mix-and-match, and a snapshot
    // older than the known one is a rollback even if the timestamp were consistent.
    let targets = fx.targets_meta(2);
    let targets_bytes = signed(Role::Targets, &targets, &[&fx.targets]);
    let snapshot = fx.snapshot_meta(2, &targets_bytes, 2);
    let snapshot_bytes = signed(Role::Snapshot, &snapshot, &[&fx.snapshot]);
    let timestamp = fx.timestamp_meta(9, &snapshot_bytes, 5);
    let timestamp_bytes = signed(Role::Timestamp, &timestamp, &[&fx.timestamp]);
    let root = fx.repo().root;
    let mut t = trusted(&root);
    t.update_timestamp(&timestamp_bytes).unwrap();
    assert!(matches!(
        t.update_snapshot(&snapshot_bytes),
        Err(Error::MixAndMatch {
            entry: "snapshot.json",
            field: "version",
            ..
        })
    ));
    let timestamp = fx.timestamp_meta(9, &snapshot_bytes, 2);
    let timestamp_bytes = signed(Role::Timestamp, &timestamp, &[&fx.timestamp]);
    let mut t = trusted_with(
        &root,
        t0() - DAY,
        KnownVersions {
            timestamp: 0,
            snapshot: 1,
            targets: 3,
        },
    );
    t.update_timestamp(&timestamp_bytes).unwrap();
    assert!(matches!(
        t.update_snapshot(&snapshot_bytes),
        Err(Error::Rollback {
            role: Role::Targets,
            trusted: 3,
            new: 2
        })
    ));
}

#[test]
fn expired_metadata_is_refused_against_the_floor() {
    let fx = Fx::new();
    let repo = fx.repo();
    // Timestamp expires after 7 days: a floor of 8 days refuses it even though the signature is older.
    let mut t = trusted_with(&repo.root, t0() + 8 * DAY, KnownVersions::default());
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::Expired {
            role: Role::Timestamp,
            ..
        })
    ));
    // Snapshot (30 days) and targets (90 days) likewise.
    let mut t = trusted_with(&repo.root, t0() + 31 * DAY, KnownVersions::default());
    let ts = fx.timestamp_meta(1, &repo.snapshot, 1);
    let ts = Timestamp {
        common: Common::new(Role::Timestamp, 1, expires(100 * DAY)),
        ..ts
    };
    t.update_timestamp(&signed(Role::Timestamp, &ts, &[&fx.timestamp]))
        .unwrap();
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::Expired {
            role: Role::Snapshot,
            ..
        })
    ));
    // Root (365 days) once the chain is walked.
    let mut t = trusted_with(&repo.root, t0() + 400 * DAY, KnownVersions::default());
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::Expired {
            role: Role::Root,
            ..
        })
    ));
}

#[test]
fn the_floor_from_newer_signatures_expires_older_metadata() {
    // The RTC says t0 - 1 day, but a timestamp signed on day 40 proves it is at least day 40: the snapshot
    // that expires on day 30 is refused although the clock would have accepted it.
    let fx = Fx::new();
    let repo = fx.repo();
    let ts = Timestamp {
        common: Common::new(Role::Timestamp, 1, expires(50 * DAY)),
        ..fx.timestamp_meta(1, &repo.snapshot, 1)
    };
    let ts = signed_at(Role::Timestamp, &ts, &[&fx.timestamp], t0() + 40 * DAY);
    let mut t = trusted(&repo.root);
    t.update_timestamp(&ts).unwrap();
    assert_eq!(t.floor(), t0() + 40 * DAY);
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::Expired {
            role: Role::Snapshot,
            ..
        })
    ));
}

#[test]
fn mix_and_match_is_refused() {
    let fx = Fx::new();
    let repo = fx.repo();
    // Right length, wrong digests for snapshot.json.
    let mut meta = file(&repo.snapshot);
    meta.version = 1;
    meta.hashes = Some(Hashes {
        sha256: hashes(b"other").sha256,
        ..hashes(&repo.snapshot)
    });
    let ts = Timestamp {
        meta: BTreeMap::from([("snapshot.json".to_owned(), meta.clone())]),
        ..fx.timestamp_meta(1, &repo.snapshot, 1)
    };
    let mut t = trusted(&repo.root);
    t.update_timestamp(&signed(Role::Timestamp, &ts, &[&fx.timestamp]))
        .unwrap();
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::MixAndMatch {
            field: "sha256",
            ..
        })
    ));
    meta.hashes = Some(Hashes {
        sha512: hashes(b"other").sha512,
        ..hashes(&repo.snapshot)
    });
    let ts = Timestamp {
        meta: BTreeMap::from([("snapshot.json".to_owned(), meta)]),
        ..ts
    };
    let mut t = trusted(&repo.root);
    t.update_timestamp(&signed(Role::Timestamp, &ts, &[&fx.timestamp]))
        .unwrap();
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::MixAndMatch {
            field: "sha512",
            ..
        })
    ));

    // Another (validly signed) snapshot than the timestamp describes.
    let other = fx.repo_from(&fx.targets_meta(1), 2, 1);
    let mut t = trusted(&repo.root);
    t.update_timestamp(&repo.timestamp).unwrap();
    assert!(matches!(
        t.update_snapshot(&other.snapshot),
        Err(Error::MixAndMatch { .. })
    ));

    // Targets version 2 while the snapshot says 1 (snapshot without length/hashes, so only the version pins it).
    let snapshot = Snapshot {
        meta: BTreeMap::from([(
            "targets.json".to_owned(),
            MetaFile {
                version: 1,
                length: None,
                hashes: None,
            },
        )]),
        ..fx.snapshot_meta(1, &repo.targets, 1)
    };
    let snapshot = signed(Role::Snapshot, &snapshot, &[&fx.snapshot]);
    let ts = signed(
        Role::Timestamp,
        &fx.timestamp_meta(1, &snapshot, 1),
        &[&fx.timestamp],
    );
    let targets2 = signed(Role::Targets, &fx.targets_meta(2), &[&fx.targets]);
    let mut t = trusted(&repo.root);
    t.update_timestamp(&ts).unwrap();
    t.update_snapshot(&snapshot).unwrap();
    assert!(matches!(
        t.update_targets(&targets2),
        Err(Error::MixAndMatch {
            entry: "targets.json",
            field: "version",
            ..
        })
    ));
    // And targets bytes that differ from the snapshot's digests.
    let mut t = trusted(&repo.root);
    t.update_timestamp(&repo.timestamp).unwrap();
    t.update_snapshot(&repo.snapshot).unwrap();
    assert!(matches!(
        t.update_targets(&targets2),
        Err(Error::MixAndMatch { .. })
    ));
}

#[test]
fn signatures_from_keys_not_listed_for_the_role_count_zero() {
    let fx = Fx::new();
    let repo = fx.repo();
    let ts = fx.timestamp_meta(1, &repo.snapshot, 1);
    // A stranger's key, and a key the root carries but for another role.
    for wrong in [&fx.stranger, &fx.targets] {
        let bytes = signed(Role::Timestamp, &ts, &[wrong]);
        assert!(matches!(
            trusted(&repo.root).update_timestamp(&bytes),
            Err(Error::Threshold {
                role: Role::Timestamp,
                valid: 0,
                threshold: 1,
                ..
            })
        ));
    }
    // The right keyid with a signature made by another key.
    let data = canonical_of(&repo.timestamp);
    let mut forged = raw_sign(fx.stranger.tsk(), 0, t0(), &data);
    forged.keyid = fx.timestamp.key_id();
    let bytes = with_signatures(&repo.timestamp, vec![forged]);
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&bytes),
        Err(Error::Threshold { valid: 0, .. })
    ));
    // A good signature over other bytes.
    let other = raw_sign(fx.timestamp.tsk(), 0, t0(), b"something else");
    let bytes = with_signatures(&repo.timestamp, vec![other]);
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&bytes),
        Err(Error::Threshold { valid: 0, .. })
    ));
    // No signatures at all.
    let bytes = with_signatures(&repo.timestamp, vec![]);
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&bytes),
        Err(Error::Threshold { valid: 0, .. })
    ));
}

#[test]
fn thresholds_count_distinct_primary_keys() {
    let fx = Fx::new();
    let root = fx.root_meta(1, &fx.root_refs());
    // One root key of the two needed.
    let one = signed(Role::Root, &root, &[&fx.root[0]]);
    assert!(matches!(
        Trusted::new(&one, t0(), KnownVersions::default(), Limits::default()),
        Err(Error::Threshold {
            role: Role::Root,
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    // The same signature twice does not count twice.
    let sigs = signatures_of(&one);
    let twice = with_signatures(&one, vec![sigs[0].clone(), sigs[0].clone()]);
    assert!(matches!(
        Trusted::new(&twice, t0(), KnownVersions::default(), Limits::default()),
        Err(Error::Threshold { valid: 1, .. })
    ));
    // Two signing subkeys of one certificate are one signer.
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(t0() - DAY)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid("two subkeys")
        .add_signing_subkey()
        .add_signing_subkey()
        .generate()
        .unwrap();
    let double = SigningKey::from_cert(cert.clone());
    let root = fx.root_meta(1, &[&double, &fx.root[1]]);
    let data = crate::canonical::to_vec(&root).unwrap();
    let bytes = with_signatures(
        &signed(Role::Root, &root, &[]),
        vec![
            raw_sign(&cert, 0, t0(), &data),
            raw_sign(&cert, 1, t0(), &data),
        ],
    );
    assert!(matches!(
        Trusted::new(&bytes, t0(), KnownVersions::default(), Limits::default()),
        Err(Error::Threshold {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    // Each subkey alone is a good signature (the count above is not a verification failure).
    let bytes = with_signatures(
        &signed(Role::Root, &root, &[&fx.root[1]]),
        vec![
            raw_sign(&cert, 1, t0(), &data),
            signatures_of(&signed(Role::Root, &root, &[&fx.root[1]]))[0].clone(),
        ],
    );
    Trusted::new(&bytes, t0(), KnownVersions::default(), Limits::default()).unwrap();
}

#[test]
fn certificate_state_at_signing_time_can_only_reject() {
    let fx = Fx::new();
    let repo = fx.repo();
    let data = canonical_of(&repo.timestamp);
    // A signature dated before the key existed.
    let early = raw_sign(fx.timestamp.tsk(), 0, t0() - 2 * DAY, &data);
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&with_signatures(&repo.timestamp, vec![early])),
        Err(Error::Threshold { valid: 0, .. })
    ));

    // A certificate that expired before the signature was made.
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(t0() - 10 * DAY)
        .set_validity_period(DAY)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid("short-lived")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let short = SigningKey::from_cert(cert.clone());
    let mut root = fx.root_meta(1, &fx.root_refs());
    root.keys
        .insert(short.key_id(), root_key(&short.cert()).unwrap());
    root.roles
        .insert("timestamp".into(), role_keys(&[&short], 1));
    let root_bytes = signed(Role::Root, &root, &fx.root_refs());
    let ts = fx.timestamp_meta(1, &repo.snapshot, 1);
    let data = crate::canonical::to_vec(&ts).unwrap();
    let bytes = with_signatures(
        &signed(Role::Timestamp, &ts, &[]),
        vec![raw_sign(&cert, 0, t0(), &data)],
    );
    assert!(matches!(
        trusted(&root_bytes).update_timestamp(&bytes),
        Err(Error::Threshold { valid: 0, .. })
    ));
    // Signed while it was alive, it counts.
    let bytes = with_signatures(
        &signed(Role::Timestamp, &ts, &[]),
        vec![raw_sign(
            &cert,
            0,
            t0() - 10 * DAY + Duration::from_secs(60),
            &data,
        )],
    );
    trusted(&root_bytes).update_timestamp(&bytes).unwrap();

    // A revoked certificate (the revocation travels in the root's copy of the certificate).
    let (revoked_key, revocation) = generate("revoked", Role::Timestamp, t0() - DAY).unwrap();
    let revocation = openpgp::Packet::from_bytes(&revocation).unwrap();
    let (revoked_cert, _) = revoked_key.cert().insert_packets(vec![revocation]).unwrap();
    let mut root = fx.root_meta(1, &fx.root_refs());
    root.keys
        .insert(revoked_key.key_id(), root_key(&revoked_cert).unwrap());
    root.roles
        .insert("timestamp".into(), role_keys(&[&revoked_key], 1));
    let root_bytes = signed(Role::Root, &root, &fx.root_refs());
    let bytes = signed(Role::Timestamp, &ts, &[&revoked_key]);
    assert!(matches!(
        trusted(&root_bytes).update_timestamp(&bytes),
        Err(Error::Threshold { valid: 0, .. })
    ));
}

#[test]
fn root_rotation_needs_old_and_new_thresholds() {
    let fx = Fx::new();
    let repo = fx.repo();
    let new_keys: Vec<SigningKey> = (0..2)
        .map(|i| key(&format!("new{i}"), Role::Root))
        .collect();
    let new_refs: Vec<&SigningKey> = new_keys.iter().collect();
    let root2 = fx.root_meta(2, &new_refs);
    let old_refs = fx.root_refs();

    let both: Vec<&SigningKey> = old_refs[..2]
        .iter()
        .chain(new_refs.iter())
        .copied()
        .collect();
    let good = signed(Role::Root, &root2, &both);
    let mut t = trusted(&repo.root);
    t.update_root(&good).unwrap();
    assert_eq!(t.root().common.version, 2);

    let mut t = trusted(&repo.root);
    assert!(matches!(
        t.update_root(&signed(Role::Root, &root2, &new_refs)),
        Err(Error::Threshold {
            role: Role::Root,
            valid: 0,
            ..
        })
    ));
    let mut t = trusted(&repo.root);
    assert!(matches!(
        t.update_root(&signed(Role::Root, &root2, &old_refs)),
        Err(Error::Threshold {
            role: Role::Root,
            valid: 0,
            threshold: 2,
            ..
        })
    ));

    // Version exactly N+1; not the same, not older, not skipping.
    let mut t = trusted(&repo.root);
    let root3 = signed(Role::Root, &fx.root_meta(3, &old_refs), &old_refs);
    assert!(matches!(
        t.update_root(&root3),
        Err(Error::RootVersion {
            trusted: 1,
            found: 3
        })
    ));
    let again = signed(Role::Root, &fx.root_meta(1, &old_refs), &old_refs);
    assert!(matches!(
        t.update_root(&again),
        Err(Error::Rollback {
            role: Role::Root,
            ..
        })
    ));

    // The chain is walked one by one: 1 -> 2 -> 3, each signed by its predecessor's keys.
    let root3 = signed(Role::Root, &fx.root_meta(3, &new_refs), &new_refs);
    let mut t = trusted(&repo.root);
    t.update_root(&good).unwrap();
    t.update_root(&root3).unwrap();
    apply(&mut t, &repo).unwrap();
    // Roots come before the timestamp.
    assert!(matches!(t.update_root(&root3), Err(Error::Order { .. })));
}

#[test]
fn rotating_timestamp_keys_resets_known_versions() {
    let mut fx = Fx::new();
    let repo = fx.repo();
    let known = KnownVersions {
        timestamp: 50,
        snapshot: 50,
        targets: 1,
    };
    fx.timestamp = key("timestamp2", Role::Timestamp);
    let root2 = signed(
        Role::Root,
        &fx.root_meta(2, &fx.root_refs()),
        &fx.root_refs(),
    );
    let mut t = trusted_with(&repo.root, t0() - DAY, known);
    t.update_root(&root2).unwrap();
    assert_eq!(t.known_versions().timestamp, 0);
    let fresh = fx.repo();
    apply(&mut t, &fresh).unwrap();
    // The old timestamp key no longer counts.
    let mut t = trusted(&repo.root);
    t.update_root(&root2).unwrap();
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::Threshold { .. })
    ));
}

#[test]
fn escaping_target_paths_refuse_the_targets() {
    let fx = Fx::new();
    for bad in ["/etc/shadow", "../../boot/vmlinuz", "a\\b", "a//b", "a\0b"] {
        let mut targets = fx.targets_meta(1);
        let file = targets.targets.remove("vmlinuz").unwrap();
        targets.targets.insert(bad.to_owned(), file);
        let repo = fx.repo_from(&targets, 1, 1);
        let mut t = trusted(&repo.root);
        assert!(
            matches!(apply(&mut t, &repo), Err(Error::TargetPath { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn incomplete_or_unversioned_releases_are_refused() {
    let fx = Fx::new();
    let mut targets = fx.targets_meta(1);
    targets.targets.remove("initrd.img");
    let repo = fx.repo_from(&targets, 1, 1);
    assert!(matches!(
        apply(&mut trusted(&repo.root), &repo),
        Err(Error::ReleaseTarget {
            kind: "initrd",
            count: 0
        })
    ));
    let mut targets = fx.targets_meta(1);
    targets.custom.version = "one point two".into();
    let repo = fx.repo_from(&targets, 1, 1);
    assert!(matches!(
        apply(&mut trusted(&repo.root), &repo),
        Err(Error::Version {
            field: "version",
            ..
        })
    ));
}

#[test]
fn oversized_metadata_is_refused_before_parsing() {
    let fx = Fx::new();
    let repo = fx.repo();
    let limits = Limits::default();
    // Not even JSON: had it been parsed, this would be a Json error.
    let huge = vec![b'x'; limits.timestamp as usize + 1];
    assert!(matches!(
        trusted(&repo.root).update_timestamp(&huge),
        Err(Error::TooLarge { .. })
    ));
    let huge = vec![b'x'; limits.root as usize + 1];
    assert!(matches!(
        Trusted::new(&huge, t0(), KnownVersions::default(), limits),
        Err(Error::TooLarge { .. })
    ));
    let small = Limits {
        timestamp: 100,
        ..limits
    };
    let mut t = Trusted::new(&repo.root, t0(), KnownVersions::default(), small).unwrap();
    assert!(matches!(
        t.update_timestamp(&repo.timestamp),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn wrong_or_unknown_type_is_refused() {
    let fx = Fx::new();
    let repo = fx.repo();
    assert!(matches!(
        Trusted::new(
            &repo.timestamp,
            t0(),
            KnownVersions::default(),
            Limits::default()
        ),
        Err(Error::WrongType {
            expected: Role::Root,
            ..
        })
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&repo.timestamp).unwrap();
    v["signed"]["_type"] = "mirrors".into();
    let bytes = serde_json::to_vec(&v).unwrap();
    match trusted(&repo.root).update_timestamp(&bytes) {
        Err(Error::WrongType { found, .. }) => assert_eq!(found, "mirrors"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_order_is_enforced() {
    let fx = Fx::new();
    let repo = fx.repo();
    let mut t = trusted(&repo.root);
    assert!(matches!(
        t.update_snapshot(&repo.snapshot),
        Err(Error::Order { .. })
    ));
    assert!(matches!(
        t.update_targets(&repo.targets),
        Err(Error::Order { .. })
    ));
    assert!(matches!(t.release(), Err(Error::Order { .. })));
}

#[test]
fn bad_root_tables_are_refused() {
    let fx = Fx::new();
    let refs = fx.root_refs();
    let check = |root: &Root| {
        Trusted::new(
            &signed(Role::Root, root, &refs),
            t0(),
            KnownVersions::default(),
            Limits::default(),
        )
    };

    let mut root = fx.root_meta(1, &refs);
    root.roles.get_mut("targets").unwrap().threshold = 2;
    assert!(matches!(
        check(&root),
        Err(Error::BadThreshold {
            role: Role::Targets,
            ..
        })
    ));
    let mut root = fx.root_meta(1, &refs);
    root.roles.get_mut("targets").unwrap().threshold = 0;
    assert!(matches!(check(&root), Err(Error::BadThreshold { .. })));
    let mut root = fx.root_meta(1, &refs);
    let id = fx.targets.key_id();
    root.roles.get_mut("targets").unwrap().keyids = vec![id.clone(), id];
    assert!(matches!(check(&root), Err(Error::DuplicateKeyId { .. })));
    let mut root = fx.root_meta(1, &refs);
    root.roles.get_mut("timestamp").unwrap().keyids = vec![fx.stranger.key_id()];
    assert!(matches!(check(&root), Err(Error::UnknownKeyId { .. })));
    let mut root = fx.root_meta(1, &refs);
    root.roles.remove("snapshot");
    assert!(matches!(
        check(&root),
        Err(Error::RoleMissing {
            role: Role::Snapshot
        })
    ));
    let mut root = fx.root_meta(1, &refs);
    root.roles
        .insert("mirrors".into(), role_keys(&[&fx.targets], 1));
    assert!(matches!(check(&root), Err(Error::UnknownRole { .. })));
    // A certificate filed under another fingerprint, and one with its secret key.
    let mut root = fx.root_meta(1, &refs);
    let key = root.keys.remove(&fx.targets.key_id()).unwrap();
    root.keys.insert(
        fx.targets.key_id(),
        root.keys[&fx.snapshot.key_id()].clone(),
    );
    root.keys.insert("00".repeat(20), key);
    assert!(matches!(check(&root), Err(Error::KeyIdMismatch { .. })));
    let mut root = fx.root_meta(1, &refs);
    let secret = String::from_utf8(fx.targets.armored_secret().unwrap()).unwrap();
    root.keys
        .get_mut(&fx.targets.key_id())
        .unwrap()
        .keyval
        .public = secret;
    assert!(matches!(check(&root), Err(Error::SecretInRoot { .. })));
}
