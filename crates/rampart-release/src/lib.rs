//! rampart-release: the operator's side of signed updates. Generates role keys, builds a static release
//! repository from a built image (metadata signed per role, targets content-addressed), rotates the root,
//! refreshes the timestamp, packs the air-gapped bundle, and verifies a repository or bundle with exactly the
//! client walk devices run (`rampart_update::client`).
//!
//! The repository is a plain directory (see `rampart_update::layout`); state is the metadata in it, so two
//! operators with the same directory agree. Every command writes new files first and `timestamp.json` last,
//! each by write-temp-then-rename, and then verifies the result from `1.root.json`: a command that succeeds
//! leaves a repository devices accept. Rejected: a database of releases (the repository *is* the database) and
//! an online signing service (root keys stay offline; see the crate README for the key ceremony).

pub mod build;
pub mod bundle;
pub mod files;
pub mod keydir;
pub mod repo;
pub mod verify;

pub use keydir::KeyDir;
pub use repo::Repo;
