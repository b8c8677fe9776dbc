//! What the updater's integration tests and its benchmark share: a repository signed by freshly generated keys
//! (one per role, threshold 1), built by rampart-release exactly as `make release` does, and a device as the
//! image leaves it (an ESP with v0.1.0's entry, booted from slot A, slot B a regular file).
#![allow(clippy::unwrap_used, dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rampart_release::build::{build, Inputs};
use rampart_release::repo::{Expiry, Thresholds};
use rampart_release::{keydir, KeyDir, Repo};
use rampart_update::{client, Limits, Role, Trusted};
use rampart_updated::{Config, Engine, Slot, Slots, System};
use semver::Version;

/// The repository under `dir/repo` and the image it carries: release 1.1.0 of a small image, 5.5 chunks of
/// 4 KiB, compressible (the frames are real zstd, not raw blocks). Inputs and keys stay under `dir`.
pub fn signed_release(dir: &Path) -> (Repo, Vec<u8>) {
    let image: Vec<u8> = (0..22_528u32).map(|i| (i / 7 % 251) as u8).collect();
    fs::write(dir.join("root-a.img"), &image).unwrap();
    fs::write(dir.join("vmlinuz"), b"kernel 1.1.0").unwrap();
    fs::write(dir.join("initrd.img"), b"initrd 1.1.0").unwrap();
    let repo = signed_release_of(
        dir,
        &Inputs {
            rootfs: dir.join("root-a.img"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            version: "1.1.0".into(),
            min_installed_version: "0.1.0".into(),
            variant: "x86_64".into(),
            chunk_size: 4096,
            zstd_level: 3,
        },
    );
    (repo, image)
}

/// Fresh keys under `dir/keys` and a repository under `dir/repo` holding the release `inputs` describe.
pub fn signed_release_of(dir: &Path, inputs: &Inputs) -> Repo {
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
    build(&repo, &keys, inputs, Expiry::default()).unwrap();
    repo
}

pub const V1_PARTUUID: &str = "817a5b33-81ac-4807-8c2c-5577dd010395";

/// A device under `dir`: v0.1.0 booted from slot A (partition UUIDs as the image has them), its entry on the
/// ESP, and slot B a file of `slot_len` zero bytes. `sync_every` as the daemon's setting.
pub struct Device {
    pub config: Config,
    pub system: System,
}

impl Device {
    pub fn new(dir: &Path, slot_len: u64, sync_every: usize) -> Device {
        let esp = dir.join("esp");
        fs::create_dir_all(esp.join("loader/entries")).unwrap();
        fs::write(
            esp.join("loader/entries/rampart-0.1.0.conf"),
            format!("title Rampart 0.1.0\nversion 0.1.0\nsort-key rampart\noptions root=PARTUUID={V1_PARTUUID} rootfstype=erofs ro panic=10\n"),
        )
        .unwrap();
        let dev = dir.join("dev");
        fs::create_dir_all(&dev).unwrap();
        let slots = Slots::image().with_dev_dir(&dev);
        fs::File::create(slots.device(Slot::B))
            .unwrap()
            .set_len(slot_len)
            .unwrap();
        let config = Config {
            slots: slots.clone(),
            esp,
            state_dir: dir.join("state"),
            var_lib: dir.join("var/lib/rampart"),
            snapshot_dir: dir.join("snapshots"),
            sync_every,
            kernel_options: None,
            boot_tries: rampart_updated::boot::TRIES,
        };
        let booted = slots
            .booted(&format!("root=PARTUUID={V1_PARTUUID} ro"))
            .unwrap();
        let system = System {
            booted,
            running_version: Version::new(0, 1, 0),
            boot_id: "boot-1".into(),
        };
        Device { config, system }
    }

    pub fn slot_b(&self) -> PathBuf {
        self.config.slots.device(Slot::B)
    }

    pub fn engine(&self) -> Engine {
        Engine::open(self.config.clone(), self.system.clone()).unwrap()
    }

    /// The TUF walk from the repository's `1.root.json` over `metadata` (a directory or HTTPS), then `begin`
    /// with its release.
    pub fn begin(&self, engine: &mut Engine, repo_dir: &Path, metadata: &mut dyn client::Source) {
        let root = fs::read(repo_dir.join("metadata/1.root.json")).unwrap();
        let mut trusted = Trusted::new(
            &root,
            engine.journal().trusted_floor().max(SystemTime::now()),
            engine.journal().known_versions,
            Limits::default(),
        )
        .unwrap();
        client::refresh(&mut trusted, metadata, Limits::default()).unwrap();
        engine.record_trust(&trusted).unwrap();
        engine.begin(&trusted.release().unwrap(), "x86_64").unwrap();
    }
}
