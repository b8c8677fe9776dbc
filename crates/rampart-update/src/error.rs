//! Errors of update metadata, its verification and the chunk index. Each refusal the client makes is its own
//! variant, so the daemon can report (and the tests can tell apart) *why* an update was refused.

use crate::role::Role;

/// What sequoia-openpgp reports (an `anyhow::Error` inside), kept as a source.
pub type OpenPgpError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Parsing.
    #[error("{what} is {len} bytes, more than the {cap} bytes allowed; refused before parsing")]
    TooLarge { what: String, len: u64, cap: u64 },
    #[error("{what} is not valid metadata")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: _type is {found:?}, expected {expected:?}")]
    WrongType {
        what: String,
        expected: Role,
        found: String,
    },
    #[error("{role} metadata has spec_version {found:?}; this client understands 1.x")]
    SpecVersion { role: Role, found: String },
    #[error("{role} metadata has version 0; versions start at 1")]
    ZeroVersion { role: Role },
    #[error("invalid time {value:?}: expected RFC 3339 UTC such as 2030-01-01T00:00:00Z")]
    Time { value: String },

    // Keys and the root's role table.
    #[error("root key {keyid}: the certificate cannot be parsed")]
    Certificate { keyid: String, source: OpenPgpError },
    #[error("root key {keyid}: keytype {found:?} is not \"openpgp\"")]
    KeyType { keyid: String, found: String },
    #[error("root key {keyid} carries the certificate of {fingerprint}")]
    KeyIdMismatch { keyid: String, fingerprint: String },
    #[error("root key {keyid} carries secret key material; root metadata holds public certificates only")]
    SecretInRoot { keyid: String },
    #[error("root metadata has no {role} role")]
    RoleMissing { role: Role },
    #[error("root metadata names an unknown role {name:?}")]
    UnknownRole { name: String },
    #[error("{role} role: threshold {threshold} with {keys} distinct keys (need 1 <= threshold <= keys)")]
    BadThreshold {
        role: Role,
        threshold: u32,
        keys: usize,
    },
    #[error("{role} role lists key {keyid}, which root metadata does not carry")]
    UnknownKeyId { role: Role, keyid: String },
    #[error("{role} role lists key {keyid} twice")]
    DuplicateKeyId { role: Role, keyid: String },

    // Signatures.
    #[error("{role} metadata has {valid} valid signatures from distinct {signer} keys, {threshold} needed{}",
        if rejected.is_empty() { String::new() } else { format!(" (rejected: {})", rejected.join("; ")) })]
    Threshold {
        role: Role,
        signer: Role,
        valid: usize,
        threshold: u32,
        rejected: Vec<String>,
    },
    #[error("cannot sign {role} metadata with key {keyid}")]
    Sign {
        role: Role,
        keyid: String,
        source: OpenPgpError,
    },
    #[error("secret key file holds no key that can sign now: {reason}")]
    SigningKey { reason: String },

    // Client order and freshness.
    #[error(
        "{role} metadata version {new} is older than the trusted version {trusted} (rollback)"
    )]
    Rollback { role: Role, trusted: u64, new: u64 },
    #[error("root metadata version {found} does not follow the trusted version {trusted}: roots go up one by one")]
    RootVersion { trusted: u64, found: u64 },
    #[error("{role} metadata expired at {expires} (trusted time is {now})")]
    Expired {
        role: Role,
        expires: String,
        now: String,
    },
    #[error("{role} metadata says {entry} {field} is {expected}, but {entry} has {found} (mix-and-match)")]
    MixAndMatch {
        role: Role,
        entry: &'static str,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{role} metadata does not describe {entry} (or lacks its {field})")]
    MissingMeta {
        role: Role,
        entry: &'static str,
        field: &'static str,
    },
    #[error("{step} needs {needs} first (TUF client order: root, timestamp, snapshot, targets)")]
    Order {
        step: &'static str,
        needs: &'static str,
    },

    // Targets.
    #[error("target path {path:?} refused: {reason}")]
    TargetPath { path: String, reason: &'static str },
    #[error("{what}: length {found} differs from the {expected} bytes the metadata gives")]
    Length {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{what}: {algorithm} digest differs from the metadata")]
    Digest {
        what: String,
        algorithm: &'static str,
    },
    #[error("targets metadata has {count} targets of kind {kind:?}; a release has exactly one")]
    ReleaseTarget { kind: &'static str, count: usize },
    #[error("release {field} {value:?} is not a version (semver, e.g. 1.4.0)")]
    Version {
        field: &'static str,
        value: String,
        source: semver::Error,
    },
    #[error("release is for variant {release:?}, this machine is {device:?}")]
    WrongVariant { release: String, device: String },
    #[error("release {release} is older than the installed version {installed} (downgrade)")]
    Downgrade { release: String, installed: String },
    #[error("release {release} is below the anti-rollback floor {floor}")]
    BelowRollbackFloor { release: String, floor: String },
    #[error("release {release} can only be installed over {minimum} or later; this machine runs {installed}")]
    InstalledTooOld {
        release: String,
        minimum: String,
        installed: String,
    },

    // Chunk index.
    #[error("chunk index is inconsistent: {reason}")]
    ChunkIndex { reason: String },
    #[error("chunk {index} does not exist (the index has {count})")]
    ChunkOutOfRange { index: usize, count: usize },
    #[error("chunk {index} ({len} bytes at offset {offset}) does not match its hash")]
    ChunkMismatch { index: usize, offset: u64, len: u64 },

    // Bundles and files.
    #[error("bundle entry {path:?} refused: {reason}")]
    BundleEntry { path: String, reason: &'static str },
    #[error("bundle lacks {what}")]
    BundleMissing { what: String },
    #[error("cannot {op} {what}")]
    Io {
        op: &'static str,
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        what: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { op, what, source }
    }
}

pub(crate) fn pgp(e: impl Into<OpenPgpError>) -> OpenPgpError {
    e.into()
}
