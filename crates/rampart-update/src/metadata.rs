//! The `signed` part of each role's metadata, as TUF 1.0 lays it out, plus the envelope around it.
//!
//! Unknown fields are kept out of the types but stay covered by the signature (the verifier checks the
//! canonical form of what it parsed, see [`crate::canonical`]), so a newer release tool can add fields that
//! older devices ignore. Rampart's own fields: `keytype: "openpgp"` keys carrying an armored certificate, and the
//! targets role's `custom` release description ([`ReleaseInfo`]) plus a `kind` per target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::utc::UtcTime;

/// The TUF specification version we write; we read any 1.x.
pub const SPEC_VERSION: &str = "1.0.31";

/// `{"signed": ..., "signatures": [...]}`, the file format of every role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    pub signed: T,
    pub signatures: Vec<SignatureEntry>,
}

/// One signature: `keyid` is the signer's primary key fingerprint (lowercase hex), `sig` an ASCII-armored
/// detached OpenPGP signature over the canonical JSON of `signed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub keyid: String,
    pub sig: String,
}

/// Fields every role has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Common {
    #[serde(rename = "_type")]
    pub role_type: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: UtcTime,
}

impl Common {
    pub fn new(role: Role, version: u64, expires: UtcTime) -> Common {
        Common {
            role_type: role.as_str().to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version,
            expires,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    #[serde(flatten)]
    pub common: Common,
    pub consistent_snapshot: bool,
    /// Primary key fingerprint (lowercase hex) -> the public certificate.
    pub keys: BTreeMap<String, Key>,
    /// Role name -> the keys that may sign it and how many distinct ones must.
    pub roles: BTreeMap<String, RoleKeys>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Always `openpgp`.
    pub keytype: String,
    /// Always `openpgp` (the signature packet names its own algorithm).
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// ASCII-armored OpenPGP certificate, public parts only.
    pub public: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

/// The length and digests of a file. Both digests are checked: a collision would have to hold in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    pub sha256: String,
    pub sha512: String,
}

/// What the timestamp says about snapshot.json, and the snapshot about targets.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(flatten)]
    pub common: Common,
    /// Exactly `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub common: Common,
    /// Exactly `targets.json` (no delegations).
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(flatten)]
    pub common: Common,
    /// Target name -> file. Names are plain relative paths (checked by [`crate::target_path`]).
    pub targets: BTreeMap<String, TargetFile>,
    /// The release these targets make up.
    pub custom: ReleaseInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: Hashes,
    pub custom: TargetCustom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCustom {
    /// `rootfs` (zstd-compressed slot image), `kernel`, `initrd` or `chunk-index`; other kinds are ignored.
    pub kind: String,
}

/// Rampart's release description in targets metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// The release version (semver).
    pub version: String,
    /// The oldest installed version this release may be installed over (e.g. a one-way migration in between).
    pub min_installed_version: String,
    /// Variant / hardware id the release is built for; a device installs only its own.
    pub variant: String,
}

/// Target kinds a release consists of.
pub mod kind {
    pub const ROOTFS: &str = "rootfs";
    pub const KERNEL: &str = "kernel";
    pub const INITRD: &str = "initrd";
    pub const CHUNK_INDEX: &str = "chunk-index";
    pub const ALL: [&str; 4] = [ROOTFS, KERNEL, INITRD, CHUNK_INDEX];
}
