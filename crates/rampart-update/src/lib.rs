//! rampart-update: signed update metadata, shared by the release tool (`rampart-release`) and the device's
//! updater (`rampart-updated`).
//!
//! What: The Update Framework's four roles ([`metadata`]) in `{"signed", "signatures"}` envelopes, signed with
//! detached OpenPGP signatures ([`signature`], sequoia-openpgp) over canonical JSON ([`canonical`]); the client's
//! verifier ([`verify::Trusted`]) that refuses rollback, freeze, mix-and-match, foreign keys, escaping paths,
//! wrong variants and downgrades, each with its own [`Error`] variant; the chunk index ([`chunks`]) the updater
//! writes and resumes a slot with; and the repository layout and air-gapped bundle ([`layout`], [`bundle`]).
//!
//! Why TUF: its threats (a compromised mirror, an old but validly signed release, a stolen online key) are
//! exactly a hosting appliance's; its roles let the often-used keys (timestamp, snapshot) be online and the root
//! keys stay offline. Why OpenPGP and not TUF's ed25519 JSON keys: operators already have OpenPGP tooling and
//! hardware tokens, certificates carry expiry and revocation, and `sqv`/`gpg` can check a signature by hand.
//! Rejected: a single signature over the image (no freshness, no key rotation, no thresholds), and the
//! `tough`/`tuf` crates (their key types are fixed to TUF's; OpenPGP keys would be a fork).
//!
//! Deliberately missing: delegated targets roles (one release team signs), hashed bins, and TAP 6 root
//! versioning beyond a linear chain.

pub mod bundle;
pub mod canonical;
pub mod chunks;
pub mod client;
pub mod digest;
pub mod error;
pub mod keys;
pub mod layout;
pub mod metadata;
pub mod release;
pub mod role;
pub mod sign;
pub mod signature;
pub mod target_path;
pub mod utc;
pub mod verify;

pub use error::Error;
pub use role::Role;
pub use utc::UtcTime;
pub use verify::{KnownVersions, Limits, Trusted};
