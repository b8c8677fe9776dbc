//! The whole chain: rampart-release signs a repository from an image (keys, init, build), the device walks the
//! metadata with the TUF client, checks installability, and the engine writes the slot, boot files and entry.

mod common;

use std::fs;

use rampart_update::KnownVersions;
use rampart_updated::source::DirSource;
use rampart_updated::state::Phase;
use rampart_updated::{Engine, Slot};

#[test]
fn a_signed_release_is_applied_into_the_inactive_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (repo, image) = common::signed_release(t);

    let device = common::Device::new(t, 64 * 1024, 2);
    let (config, system, slots, esp) = (
        device.config.clone(),
        device.system.clone(),
        device.config.slots.clone(),
        device.config.esp.clone(),
    );
    let mut engine = device.engine();
    device.begin(&mut engine, &repo.dir, &mut DirSource::new(&repo.dir));
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
