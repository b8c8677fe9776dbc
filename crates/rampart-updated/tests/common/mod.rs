//! What the updater's integration tests share: a repository signed by freshly generated keys (one per role,
//! threshold 1) holding release 1.1.0 of a small image, built by rampart-release exactly as `make release` does.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use rampart_release::build::{build, Inputs};
use rampart_release::repo::{Expiry, Thresholds};
use rampart_release::{keydir, KeyDir, Repo};
use rampart_update::Role;

/// The repository under `dir/repo` and the image it carries: 5.5 chunks of 4 KiB, compressible (the frames are
/// real zstd, not raw blocks). Inputs and keys stay under `dir`.
pub fn signed_release(dir: &Path) -> (Repo, Vec<u8>) {
    let keys = dir.join("keys");
    for (role, name) in [
        (Role::Root, "a"),
        (Role::Targets, "t"),
        (Role::Snapshot, "s"),
        (Role::Timestamp, "ts"),
    ] {
        keydir::keygen(&keys, role, name).unwrap();
    }
    let keys = KeyDir::load(&keys).unwrap();
    let repo = Repo::new(&dir.join("repo"));
    repo.init(&keys, Thresholds::default(), Expiry::default())
        .unwrap();
    let image: Vec<u8> = (0..22_528u32).map(|i| (i / 7 % 251) as u8).collect();
    std::fs::write(dir.join("root-a.img"), &image).unwrap();
    std::fs::write(dir.join("vmlinuz"), b"kernel 1.1.0").unwrap();
    std::fs::write(dir.join("initrd.img"), b"initrd 1.1.0").unwrap();
    let inputs = Inputs {
        rootfs: dir.join("root-a.img"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        version: "1.1.0".into(),
        min_installed_version: "0.1.0".into(),
        variant: "x86_64".into(),
        chunk_size: 4096,
        zstd_level: 3,
    };
    build(&repo, &keys, &inputs, Expiry::default()).unwrap();
    (repo, image)
}
