//! The whole chain: rampart-release signs a repository from an image (keys, init, build), the device walks the
//! metadata with the TUF client, checks installability, and the engine writes the slot, boot files and entry.

mod common;

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use rampart_update::client::{self, read_capped, Source};
use rampart_update::{layout, Error as UpdateError, KnownVersions, Limits, Trusted};
use rampart_updated::source::DirSource;
use rampart_updated::state::Phase;
use rampart_updated::{Config, Engine, Slot, Slots, System};
use semver::Version;

struct MetadataDir<'a>(&'a Path);

impl Source for MetadataDir<'_> {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, UpdateError> {
        match fs::File::open(self.0.join(layout::METADATA_DIR).join(name)) {
            Ok(f) => Ok(Some(read_capped(f, cap, name)?)),
            Err(_) => Ok(None),
        }
    }
}

#[test]
fn a_signed_release_is_applied_into_the_inactive_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (repo, image) = common::signed_release(t);

    // The device: ESP and slots as the image leaves them.
    let esp = t.join("esp");
    fs::create_dir_all(esp.join("loader/entries")).unwrap();
    fs::write(
        esp.join("loader/entries/rampart-0.1.0.conf"),
        "title Rampart 0.1.0\nversion 0.1.0\nsort-key rampart\noptions root=PARTUUID=817a5b33-81ac-4807-8c2c-5577dd010395 rootfstype=erofs ro panic=10\n",
    )
    .unwrap();
    let dev = t.join("dev");
    fs::create_dir_all(&dev).unwrap();
    let slots = Slots::image().with_dev_dir(&dev);
    fs::write(slots.device(Slot::B), vec![0u8; 64 * 1024]).unwrap();
    let config = Config {
        slots: slots.clone(),
        esp: esp.clone(),
        state_dir: t.join("state"),
        var_lib: t.join("var/lib/rampart"),
        snapshot_dir: t.join("snapshots"),
        sync_every: 2,
        kernel_options: None,
        boot_tries: rampart_updated::boot::TRIES,
    };
    let booted = slots
        .booted("root=PARTUUID=817a5b33-81ac-4807-8c2c-5577dd010395 ro")
        .unwrap();
    let system = System {
        booted,
        running_version: Version::new(0, 1, 0),
        boot_id: "boot-1".into(),
    };
    let mut engine = Engine::open(config.clone(), system.clone()).unwrap();

    let root = fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    let mut trusted = Trusted::new(
        &root,
        engine.journal().trusted_floor().max(SystemTime::now()),
        engine.journal().known_versions,
        Limits::default(),
    )
    .unwrap();
    client::refresh(&mut trusted, &mut MetadataDir(&repo.dir), Limits::default()).unwrap();
    engine.record_trust(&trusted).unwrap();
    let release = trusted.release().unwrap();
    engine.begin(&release, "x86_64").unwrap();
    engine
        .run(&mut DirSource::new(&repo.dir), &mut |_| {})
        .unwrap();

    assert!(matches!(engine.journal().phase, Phase::EntryWritten { .. }));
    assert_eq!(
        &fs::read(slots.device(Slot::B)).unwrap()[..image.len()],
        &image[..]
    );
    assert_eq!(
        fs::read(esp.join("EFI/rampart/1.1.0/vmlinuz")).unwrap(),
        b"kernel 1.1.0"
    );
    let entry = fs::read_to_string(esp.join("loader/entries/rampart-1.1.0+3.conf")).unwrap();
    assert!(entry.contains(
        "options root=PARTUUID=dce24fa8-a9b0-49e1-bbcb-2af0adffb44d rootfstype=erofs ro panic=10"
    ));
    // One engine at a time; the verifier's state survives a restart.
    assert!(matches!(
        Engine::open(config.clone(), system.clone()),
        Err(rampart_updated::Error::Locked { .. })
    ));
    drop(engine);
    let reopened = Engine::open(config, system).unwrap();
    assert!(reopened.journal().trusted_time_floor > 0);
    assert_ne!(reopened.journal().known_versions, KnownVersions::default());
}
