//! Where files live in a release repository (and in a bundle, which is the same tree in a tar file).
//!
//! ```text
//! metadata/N.root.json        every root version, so a device N versions behind walks the chain
//! metadata/root.json          the newest root (a copy)
//! metadata/timestamp.json     the only file fetched without knowing its version: short expiry
//! metadata/N.snapshot.json    consistent snapshots: a CDN may cache versioned files for ever
//! metadata/N.targets.json
//! metadata/snapshot.json, metadata/targets.json   copies of the newest, for people and simple tools
//! targets/<sha256>.<name>     content-addressed, so a new release never overwrites a file being downloaded
//! ```

pub const METADATA_DIR: &str = "metadata";
pub const TARGETS_DIR: &str = "targets";
pub const TIMESTAMP: &str = "timestamp.json";
pub const SNAPSHOT: &str = "snapshot.json";
pub const TARGETS: &str = "targets.json";
pub const ROOT: &str = "root.json";

/// `N.root.json`, `N.snapshot.json`, `N.targets.json`.
pub fn versioned(version: u64, name: &str) -> String {
    format!("{version}.{name}")
}

/// The file name of a target under `targets/`: its SHA-256, then the last component of its name (the digest
/// alone identifies the file; the name is for people).
pub fn target_file(sha256: &str, name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    format!("{sha256}.{last}")
}
