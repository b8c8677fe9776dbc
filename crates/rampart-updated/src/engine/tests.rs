//! The engine end to end in a tempdir: a generated release (per-chunk zstd frames, frame table), a regular file
//! as the slot device, a fake ESP, crashes simulated by failing sources and by rewinding the journal.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use rampart_update::chunks::ChunkIndex;
use rampart_update::digest;
use rampart_update::layout;
use rampart_update::metadata::{kind, Common, ReleaseInfo, TargetCustom, TargetFile, Targets};
use rampart_update::release::Release;
use rampart_update::{Role, UtcTime};
use semver::Version;

use super::*;
use crate::after_boot::BootDecision;
use crate::slot::{IMAGE_ROOT_A, IMAGE_ROOT_B};
use crate::source::DirSource;

const CHUNK: u64 = 4096;
/// 16 full chunks and a short one.
const IMAGE_LEN: usize = 16 * CHUNK as usize + 100;
const OLD_OPTIONS: &str = "root=PARTUUID=817a5b33-81ac-4807-8c2c-5577dd010395 rootfstype=erofs ro console=tty0 console=ttyS0,115200 panic=10";

/// Pseudo-random bytes: zstd stores them as raw blocks, so a frame's length depends only on the chunk's length
/// and a different chunk of the same length gives a frame of the same length (used to forge a chunk).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    image: Vec<u8>,
    index: ChunkIndex,
    rootfs: Vec<u8>,
    targets: Targets,
    config: Config,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let image = noise(IMAGE_LEN, 0x9e3779b97f4a7c15);
    let index = ChunkIndex::build(&image[..], CHUNK).unwrap();
    let mut rootfs = Vec::new();
    let mut lens = Vec::new();
    for i in 0..index.count() {
        let c = index.chunk(i).unwrap();
        let f = frame(&image[c.offset as usize..(c.offset + c.len) as usize]);
        lens.push(f.len() as u64);
        rootfs.extend_from_slice(&f);
    }
    let index = index.with_frames(lens).unwrap();
    let files: [(&str, &str, Vec<u8>); 4] = [
        ("rootfs.img.zst", kind::ROOTFS, rootfs.clone()),
        ("rootfs.chunks.json", kind::CHUNK_INDEX, index.to_bytes()),
        ("vmlinuz", kind::KERNEL, b"kernel 1.1.0".to_vec()),
        ("initrd.img", kind::INITRD, b"initrd 1.1.0".to_vec()),
    ];
    let repo = root.join("repo");
    fs::create_dir_all(repo.join(layout::TARGETS_DIR)).unwrap();
    let mut map = BTreeMap::new();
    for (name, k, bytes) in files {
        let hashes = digest::hashes(&bytes);
        let path = repo
            .join(layout::TARGETS_DIR)
            .join(layout::target_file(&hashes.sha256, name));
        fs::write(path, &bytes).unwrap();
        map.insert(
            name.to_owned(),
            TargetFile {
                length: bytes.len() as u64,
                hashes,
                custom: TargetCustom { kind: k.into() },
            },
        );
    }
    let targets = Targets {
        common: Common::new(Role::Targets, 1, UtcTime::new(std::time::UNIX_EPOCH)),
        targets: map,
        custom: ReleaseInfo {
            version: "1.1.0".into(),
            min_installed_version: "0.1.0".into(),
            variant: "x86_64".into(),
        },
    };
    // The ESP as image/build leaves it.
    let esp = root.join("esp");
    fs::create_dir_all(esp.join("loader/entries")).unwrap();
    fs::create_dir_all(esp.join("EFI/rampart/0.1.0")).unwrap();
    fs::write(esp.join("EFI/rampart/0.1.0/vmlinuz"), b"old kernel").unwrap();
    fs::write(
        esp.join("loader/loader.conf"),
        "default rampart-*\ntimeout 0\n",
    )
    .unwrap();
    fs::write(
        esp.join("loader/entries/rampart-0.1.0.conf"),
        format!("title Rampart 0.1.0\nversion 0.1.0\nsort-key rampart\nlinux /EFI/rampart/0.1.0/vmlinuz\ninitrd /EFI/rampart/0.1.0/initrd.img\noptions {OLD_OPTIONS}\n"),
    )
    .unwrap();
    // A stale entry of an old version on root-b (the slot the update overwrites) with its kernel.
    fs::create_dir_all(esp.join("EFI/rampart/0.0.9")).unwrap();
    fs::write(
        esp.join("loader/entries/rampart-0.0.9.conf"),
        format!("title Rampart 0.0.9\nversion 0.0.9\noptions root=PARTUUID={IMAGE_ROOT_B} ro\n"),
    )
    .unwrap();
    // Slot "devices": files bigger than the image, the inactive one full of old bytes.
    let dev = root.join("dev");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join(IMAGE_ROOT_A), vec![0xaa; IMAGE_LEN + 8192]).unwrap();
    fs::write(dev.join(IMAGE_ROOT_B), vec![0x55; IMAGE_LEN + 8192]).unwrap();
    let var_lib = root.join("var/lib/rampart");
    fs::create_dir_all(&var_lib).unwrap();
    fs::write(var_lib.join("settings.toml"), b"port = 40022\n").unwrap();
    let config = Config {
        slots: Slots::image().with_dev_dir(&dev),
        esp,
        state_dir: var_lib.join("updated"),
        snapshot_dir: var_lib.join("snapshots"),
        var_lib,
        sync_every: 4,
        kernel_options: None,
        boot_tries: crate::boot::TRIES,
    };
    Fx {
        _dir: dir,
        root,
        image,
        index,
        rootfs,
        targets,
        config,
    }
}

fn old_system() -> System {
    System {
        booted: Slot::A,
        running_version: Version::new(0, 1, 0),
        boot_id: "boot-1".into(),
    }
}

impl Fx {
    fn release(&self) -> Release<'_> {
        Release::from_targets(&self.targets).unwrap()
    }

    fn engine(&self) -> Engine {
        Engine::open(self.config.clone(), old_system()).unwrap()
    }

    fn begun(&self) -> Engine {
        let mut e = self.engine();
        e.begin(&self.release(), "x86_64").unwrap();
        e
    }

    fn source(&self) -> DirSource {
        DirSource::new(self.root.join("repo"))
    }

    fn rootfs_path(&self) -> PathBuf {
        let p = &self.targets.targets["rootfs.img.zst"];
        self.root
            .join("repo")
            .join(layout::TARGETS_DIR)
            .join(layout::target_file(&p.hashes.sha256, "rootfs.img.zst"))
    }

    fn slot_b(&self) -> PathBuf {
        self.config.slots.device(Slot::B)
    }

    fn slot_bytes(&self) -> Vec<u8> {
        fs::read(self.slot_b()).unwrap()
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.config.esp.join("loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn frame_offset(&self, i: usize) -> u64 {
        self.index.frame(i).unwrap().offset
    }

    fn assert_installed(&self) {
        assert_eq!(&self.slot_bytes()[..IMAGE_LEN], &self.image[..]);
        let vdir = self.config.esp.join("EFI/rampart/1.1.0");
        assert_eq!(fs::read(vdir.join("vmlinuz")).unwrap(), b"kernel 1.1.0");
        assert_eq!(fs::read(vdir.join("initrd.img")).unwrap(), b"initrd 1.1.0");
        assert_eq!(
            self.entries(),
            ["rampart-0.1.0.conf", "rampart-1.1.0+3.conf"]
        );
        assert!(!self.config.esp.join("EFI/rampart/0.0.9").exists());
        assert!(self.config.esp.join("EFI/rampart/0.1.0/vmlinuz").exists());
    }
}

fn run(e: &mut Engine, source: &mut dyn ReleaseSource) -> Result<(), Error> {
    e.run(source, &mut |_| {})
}

/// Serves the repository but fails (like a dropped connection) after `budget` bytes of the rootfs target.
struct Flaky {
    inner: DirSource,
    budget: u64,
}

struct Limited<'a> {
    inner: Box<dyn Read + 'a>,
    budget: &'a mut u64,
}

impl Read for Limited<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if *self.budget == 0 {
            return Err(std::io::Error::other("connection reset"));
        }
        let n = buf.len().min(*self.budget as usize);
        let n = self.inner.read(&mut buf[..n])?;
        *self.budget -= n as u64;
        Ok(n)
    }
}

impl ReleaseSource for Flaky {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        let inner = self.inner.open(repo_path, offset)?;
        if repo_path.ends_with("rootfs.img.zst") {
            Ok(Box::new(Limited {
                inner,
                budget: &mut self.budget,
            }))
        } else {
            Ok(inner)
        }
    }
}

impl Fx {
    fn flaky(&self, budget: u64) -> Flaky {
        Flaky {
            inner: self.source(),
            budget,
        }
    }
}

#[test]
fn full_apply_then_reboot_and_bless() {
    let fx = fixture();
    let mut e = fx.begun();
    let mut phases = Vec::new();
    e.run(&mut fx.source(), &mut |p| phases.push(p.phase))
        .unwrap();
    fx.assert_installed();
    assert!(matches!(e.journal().phase, Phase::EntryWritten { .. }));
    // Every frame fetched exactly once, every chunk written.
    assert_eq!(e.counters().fetched, fx.rootfs.len() as u64);
    assert_eq!(e.counters().chunks_written, fx.index.count());
    assert_eq!(e.progress().unwrap().phase, "entry-written");
    for want in [
        "entry-written",
        "metadata-verified",
        "writing-slot",
        "slot-written",
        "slot-verified",
        "boot-files-written",
        "snapshotted",
    ] {
        assert!(phases.contains(&want), "{want} not reported: {phases:?}");
    }
    let entry =
        fs::read_to_string(fx.config.esp.join("loader/entries/rampart-1.1.0+3.conf")).unwrap();
    assert_eq!(
        entry,
        format!(
            "title Rampart 1.1.0\nversion 1.1.0\nsort-key rampart\nlinux /EFI/rampart/1.1.0/vmlinuz\n\
             initrd /EFI/rampart/1.1.0/initrd.img\noptions root=PARTUUID={IMAGE_ROOT_B} rootfstype=erofs ro \
             console=tty0 console=ttyS0,115200 panic=10\n"
        )
    );
    // The snapshot is named after the version that was running; the cached index is gone.
    let snap = fx.config.snapshot_dir.join("0.1.0");
    assert_eq!(
        fs::read(snap.join("settings.toml")).unwrap(),
        b"port = 40022\n"
    );
    assert!(!fx.config.state_dir.join(CHUNK_INDEX_FILE).exists());
    // Nothing more to do before the reboot, and a daemon restart in the same boot waits.
    assert!(!e.step(&mut fx.source(), &mut |_| {}).unwrap());
    assert!(matches!(
        e.after_boot().unwrap(),
        BootDecision::AwaitingReboot { .. }
    ));

    // systemd-boot tried the new entry (counter +2-1) and the kernel came up from root-b.
    let entries = fx.config.esp.join("loader/entries");
    fs::rename(
        entries.join("rampart-1.1.0+3.conf"),
        entries.join("rampart-1.1.0+2-1.conf"),
    )
    .unwrap();
    let new = System {
        booted: fx
            .config
            .slots
            .booted(&format!("root=PARTUUID={IMAGE_ROOT_B} ro"))
            .unwrap(),
        running_version: Version::new(1, 1, 0),
        boot_id: "boot-2".into(),
    };
    drop(e);
    let mut e = Engine::open(fx.config.clone(), new.clone()).unwrap();
    assert!(matches!(
        e.after_boot().unwrap(),
        BootDecision::PendingBless { .. }
    ));
    assert_eq!(e.journal().phase.name(), "pending-bless");
    // systemd-bless-boot after boot-complete.target drops the counter.
    fs::rename(
        entries.join("rampart-1.1.0+2-1.conf"),
        entries.join("rampart-1.1.0.conf"),
    )
    .unwrap();
    drop(e);
    let mut e = Engine::open(fx.config.clone(), new).unwrap();
    assert!(matches!(
        e.after_boot().unwrap(),
        BootDecision::Blessed { .. }
    ));
    let j = e.journal();
    assert_eq!(j.phase.name(), "blessed");
    assert_eq!(j.rollback_floor, Some(Version::new(1, 1, 0)));
    assert_eq!(
        j.history.last().unwrap().outcome,
        crate::state::Outcome::Blessed
    );
}

#[test]
fn interrupted_at_half_resumes_with_only_the_rest() {
    let fx = fixture();
    let mut e = fx.begun();
    // The connection drops inside frame 9: chunks 0..9 are written, 0..8 synced and journaled (every 4).
    let budget = fx.frame_offset(9) + 10;
    let err = run(&mut e, &mut fx.flaky(budget)).unwrap_err();
    assert!(matches!(err, Error::Source { .. }), "{err}");
    drop(e);
    // "Reboot": a new engine from the journal on disk.
    let mut e = fx.engine();
    assert_eq!(
        e.journal().phase,
        Phase::WritingSlot {
            plan: e.journal().phase.plan().unwrap().clone(),
            chunks_done: 8
        }
    );
    run(&mut e, &mut fx.source()).unwrap();
    fx.assert_installed();
    let c = e.counters();
    // Chunk 8 was written but not journaled: the re-hash finds it good and it is not fetched again either.
    assert_eq!(c.chunks_skipped, 9);
    assert_eq!(c.chunks_written, fx.index.count() - 9);
    assert_eq!(c.fetched, fx.rootfs.len() as u64 - fx.frame_offset(9));
    assert_eq!(c.decompressed, IMAGE_LEN as u64 - 9 * CHUNK);
}

#[test]
fn a_corrupted_source_chunk_is_refused_and_not_marked_done() {
    let fx = fixture();
    // Forge chunk 5: other bytes, a valid frame of the same length (raw blocks), so only the hash can tell.
    let c = fx.index.chunk(5).unwrap();
    let forged = frame(&noise(c.len as usize, 42));
    let f = fx.index.frame(5).unwrap();
    assert_eq!(forged.len() as u64, f.len);
    let mut bad = fx.rootfs.clone();
    bad[f.offset as usize..(f.offset + f.len) as usize].copy_from_slice(&forged);
    fs::write(fx.rootfs_path(), &bad).unwrap();
    let mut cfg = fx.config.clone();
    cfg.sync_every = 1;
    let mut e = Engine::open(cfg.clone(), old_system()).unwrap();
    e.begin(&fx.release(), "x86_64").unwrap();
    let err = run(&mut e, &mut fx.source()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Update(rampart_update::Error::ChunkMismatch { index: 5, .. })
        ),
        "{err}"
    );
    assert!(matches!(
        e.journal().phase,
        Phase::WritingSlot { chunks_done: 5, .. }
    ));
    // Nothing unverified reached the slot: chunk 5 still holds the old bytes.
    let slot = fx.slot_bytes();
    assert!(slot[c.offset as usize..(c.offset + c.len) as usize]
        .iter()
        .all(|b| *b == 0x55));
    assert!(!fx.entries().iter().any(|n| n.contains("1.1.0")));
    // The mirror is fixed; the retry fetches from chunk 5 on.
    fs::write(fx.rootfs_path(), &fx.rootfs).unwrap();
    drop(e);
    let mut e = Engine::open(cfg, old_system()).unwrap();
    run(&mut e, &mut fx.source()).unwrap();
    fx.assert_installed();
    assert_eq!(
        e.counters().fetched,
        fx.rootfs.len() as u64 - fx.frame_offset(5)
    );
}

#[test]
fn a_slot_chunk_damaged_after_a_crash_is_rewritten() {
    let fx = fixture();
    let mut e = fx.begun();
    let _ = run(&mut e, &mut fx.flaky(fx.frame_offset(10) + 1)).unwrap_err();
    drop(e);
    // Chunk 2 is below the journal's mark (8) and gets damaged on the device.
    let mut slot = fx.slot_bytes();
    slot[2 * CHUNK as usize + 7] ^= 0x01;
    fs::write(fx.slot_b(), &slot).unwrap();
    let mut e = fx.engine();
    run(&mut e, &mut fx.source()).unwrap();
    fx.assert_installed();
    let f2 = fx.index.frame(2).unwrap().len;
    assert_eq!(e.counters().chunks_written, 1 + fx.index.count() - 10);
    assert_eq!(
        e.counters().fetched,
        f2 + fx.rootfs.len() as u64 - fx.frame_offset(10)
    );
}

#[test]
fn whole_slot_verify_catches_a_flipped_byte_before_any_boot_file_or_entry() {
    let fx = fixture();
    let mut e = fx.begun();
    let mut src = fx.source();
    assert!(e.step(&mut src, &mut |_| {}).unwrap()); // chunk index
    assert!(e.step(&mut src, &mut |_| {}).unwrap()); // slot written
    assert_eq!(e.journal().phase.name(), "slot-written");
    // Bit rot (or a writer we do not know about) after the chunks were checked.
    let mut slot = fx.slot_bytes();
    slot[IMAGE_LEN - 1] ^= 0x80;
    fs::write(fx.slot_b(), &slot).unwrap();
    let err = e.step(&mut src, &mut |_| {}).unwrap_err();
    let last = fx.index.count() - 1;
    assert!(
        matches!(err, Error::Update(rampart_update::Error::ChunkMismatch { index, .. }) if index == last),
        "{err}"
    );
    assert!(matches!(
        e.journal().phase,
        Phase::WritingSlot { chunks_done: 0, .. }
    ));
    assert!(!fx.config.esp.join("EFI/rampart/1.1.0").exists());
    assert_eq!(fx.entries(), ["rampart-0.1.0.conf"]);
    // The next run re-hashes, rewrites the one bad chunk and goes on.
    let before = e.counters();
    run(&mut e, &mut src).unwrap();
    fx.assert_installed();
    assert_eq!(e.counters().chunks_written - before.chunks_written, 1);
}

#[test]
fn every_step_can_be_repeated_after_a_crash_before_it_was_journaled() {
    // For each step: do it, then put back the journal from before it (the crash came after the work but before
    // the rename of the journal), restart, and run to the end.
    for k in 0..6 {
        let fx = fixture();
        let mut e = fx.begun();
        let mut src = fx.source();
        for _ in 0..k {
            assert!(e.step(&mut src, &mut |_| {}).unwrap());
        }
        let journal = fs::read(fx.config.state_dir.join(crate::state::FILE_NAME)).unwrap();
        assert!(e.step(&mut src, &mut |_| {}).unwrap());
        fs::write(fx.config.state_dir.join(crate::state::FILE_NAME), &journal).unwrap();
        drop(e);
        let mut e = fx.engine();
        run(&mut e, &mut src).unwrap();
        fx.assert_installed();
        assert!(
            matches!(e.journal().phase, Phase::EntryWritten { .. }),
            "step {k}"
        );
        // A second run in the final phase changes nothing.
        run(&mut e, &mut src).unwrap();
        fx.assert_installed();
    }
}

/// Runs to `Snapshotted`, writes the boot entry, then puts the journal back: power was cut after the entry reached
/// the ESP and before the journal recorded it.
fn cut_after_the_entry_before_its_record(fx: &Fx) {
    let mut e = fx.begun();
    let mut src = fx.source();
    while !matches!(e.journal().phase, Phase::Snapshotted { .. }) {
        assert!(e.step(&mut src, &mut |_| {}).unwrap());
    }
    let path = fx.config.state_dir.join(crate::state::FILE_NAME);
    let journal = fs::read(&path).unwrap();
    assert!(e.step(&mut src, &mut |_| {}).unwrap());
    fs::write(&path, &journal).unwrap();
    assert_eq!(fx.entries(), ["rampart-0.1.0.conf", "rampart-1.1.0+3.conf"]);
}

#[test]
fn an_entry_written_but_not_journaled_is_picked_up_whichever_slot_comes_up() {
    let entries = |fx: &Fx| fx.config.esp.join("loader/entries");

    // systemd-boot tried it and 1.1.0 came up from root-b: on trial, as if the journal had recorded the entry.
    let fx = fixture();
    cut_after_the_entry_before_its_record(&fx);
    fs::rename(
        entries(&fx).join("rampart-1.1.0+3.conf"),
        entries(&fx).join("rampart-1.1.0+2-1.conf"),
    )
    .unwrap();
    let new = System {
        booted: Slot::B,
        running_version: Version::new(1, 1, 0),
        boot_id: "boot-2".into(),
    };
    let mut e = Engine::open(fx.config.clone(), new).unwrap();
    let d = e.after_boot().unwrap();
    assert!(matches!(d, BootDecision::PendingBless { .. }), "{d:?}");
    assert_eq!(e.journal().phase.name(), "pending-bless");

    // Every try failed and the machine fell back to root-a: failed, removed, and not written again.
    let fx = fixture();
    cut_after_the_entry_before_its_record(&fx);
    fs::rename(
        entries(&fx).join("rampart-1.1.0+3.conf"),
        entries(&fx).join("rampart-1.1.0+0-3.conf"),
    )
    .unwrap();
    let mut e = Engine::open(
        fx.config.clone(),
        System {
            boot_id: "boot-4".into(),
            ..old_system()
        },
    )
    .unwrap();
    let d = e.after_boot().unwrap();
    assert!(matches!(d, BootDecision::Failed { .. }), "{d:?}");
    run(&mut e, &mut fx.source()).unwrap();
    assert_eq!(fx.entries(), ["rampart-0.1.0.conf"]);
    assert!(e.journal().failed_versions.contains(&Version::new(1, 1, 0)));

    // Only the daemon restarted, in the same boot: the entry waits for the reboot.
    let fx = fixture();
    cut_after_the_entry_before_its_record(&fx);
    let mut e = fx.engine();
    let d = e.after_boot().unwrap();
    assert!(matches!(d, BootDecision::AwaitingReboot { .. }), "{d:?}");
    assert_eq!(e.journal().phase.name(), "entry-written");
    run(&mut e, &mut fx.source()).unwrap();
    fx.assert_installed();
}

#[test]
fn begin_refuses_the_running_version_downgrades_other_variants_and_a_second_update() {
    let fx = fixture();
    let mut e = Engine::open(
        fx.config.clone(),
        System {
            running_version: Version::new(1, 1, 0),
            ..old_system()
        },
    )
    .unwrap();
    assert!(matches!(
        e.begin(&fx.release(), "x86_64"),
        Err(Error::AlreadyRunning(_))
    ));
    // Downgrades and other variants are refused by the engine itself, not only by the caller.
    drop(e);
    let mut e = Engine::open(
        fx.config.clone(),
        System {
            running_version: Version::new(2, 0, 0),
            ..old_system()
        },
    )
    .unwrap();
    assert!(matches!(
        e.begin(&fx.release(), "x86_64"),
        Err(Error::Update(rampart_update::Error::Downgrade { .. }))
    ));
    drop(e);
    let mut e = fx.engine();
    assert!(matches!(
        e.begin(&fx.release(), "arm64"),
        Err(Error::Update(rampart_update::Error::WrongVariant { .. }))
    ));
    drop(e);
    let mut e = fx.begun();
    assert!(matches!(
        e.begin(&fx.release(), "x86_64"),
        Err(Error::Transition { .. })
    ));
    e.cancel().unwrap();
    assert_eq!(e.journal().phase, Phase::Idle);
    e.begin(&fx.release(), "x86_64").unwrap();
    run(&mut e, &mut fx.source()).unwrap();
    assert!(matches!(e.cancel(), Err(Error::Transition { .. })));
}

#[test]
fn exhausted_counter_on_the_old_slot_fails_removes_and_never_retries() {
    let fx = fixture();
    let mut e = fx.begun();
    run(&mut e, &mut fx.source()).unwrap();
    // Three boots of 1.1.0 never reached boot-complete.target; systemd-boot fell back to 0.1.0 on root-a.
    let entries = fx.config.esp.join("loader/entries");
    fs::rename(
        entries.join("rampart-1.1.0+3.conf"),
        entries.join("rampart-1.1.0+0-3.conf"),
    )
    .unwrap();
    drop(e);
    let mut e = Engine::open(
        fx.config.clone(),
        System {
            boot_id: "boot-4".into(),
            ..old_system()
        },
    )
    .unwrap();
    let d = e.after_boot().unwrap();
    assert!(matches!(d, BootDecision::Failed { .. }), "{d:?}");
    assert_eq!(fx.entries(), ["rampart-0.1.0.conf"]);
    assert!(!fx.config.esp.join("EFI/rampart/1.1.0").exists());
    assert!(fx.config.esp.join("EFI/rampart/0.1.0/vmlinuz").exists());
    let j = e.journal();
    assert!(j.failed_versions.contains(&Version::new(1, 1, 0)));
    assert_eq!(j.rollback_floor, None);
    // Persisted, and the version is not begun again; a leftover entry (a failed removal) is removed later.
    fs::write(entries.join("rampart-1.1.0+0-3.conf"), "title leftover\n").unwrap();
    drop(e);
    let mut e = fx.engine();
    assert!(matches!(
        e.begin(&fx.release(), "x86_64"),
        Err(Error::FailedBefore(_))
    ));
    assert!(matches!(e.after_boot().unwrap(), BootDecision::Nothing));
    assert_eq!(fx.entries(), ["rampart-0.1.0.conf"]);
    // check_installable's view: nothing blessed here yet.
    let installed = e.installed("x86_64");
    assert_eq!(installed.rollback_floor, Version::new(0, 0, 0));
    assert_eq!(installed.version, Version::new(0, 1, 0));
}

#[test]
fn an_index_without_frame_table_or_a_too_small_slot_is_refused() {
    let fx = fixture();
    // Slot too small.
    fs::write(fx.slot_b(), vec![0u8; IMAGE_LEN - 1]).unwrap();
    let mut e = fx.begun();
    let err = run(&mut e, &mut fx.source()).unwrap_err();
    assert!(matches!(err, Error::SlotTooSmall { .. }), "{err}");
    // Frame table check against the signed rootfs length.
    let plain = ChunkIndex::build(&fx.image[..], CHUNK).unwrap();
    let plan = e.journal().phase.plan().unwrap().clone();
    assert!(matches!(
        crate::slot_write::check_frames(&plain, &plan.rootfs),
        Err(Error::NoFrameTable)
    ));
    let mut short = plan.rootfs.clone();
    short.file.length -= 1;
    assert!(matches!(
        crate::slot_write::check_frames(&fx.index, &short),
        Err(Error::FrameTable { .. })
    ));
}

#[test]
fn a_journal_naming_the_running_slot_is_never_written() {
    let fx = fixture();
    let e = fx.begun();
    drop(e);
    // The machine now runs from root-b (the plan's target), e.g. the journal came from another boot.
    let before = fx.slot_bytes();
    let mut e = Engine::open(
        fx.config.clone(),
        System {
            booted: Slot::B,
            ..old_system()
        },
    )
    .unwrap();
    let err = run(&mut e, &mut fx.source()).unwrap_err();
    assert!(matches!(err, Error::RunningSlot { slot: Slot::B }), "{err}");
    assert_eq!(fx.slot_bytes(), before);
}

#[test]
fn system_is_read_from_proc() {
    let fx = fixture();
    let proc = fx.root.join("proc");
    fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
    fs::write(proc.join("cmdline"), format!("{OLD_OPTIONS}\n")).unwrap();
    fs::write(
        proc.join("sys/kernel/random/boot_id"),
        "0f1e2d3c-aaaa-bbbb-cccc-111122223333\n",
    )
    .unwrap();
    let s = System::detect(&fx.config.slots, &proc, Version::new(0, 1, 0)).unwrap();
    assert_eq!(s.booted, Slot::A);
    assert_eq!(s.boot_id, "0f1e2d3c-aaaa-bbbb-cccc-111122223333");
    fs::write(proc.join("cmdline"), "root=/dev/sda2 ro\n").unwrap();
    assert!(matches!(
        System::detect(&fx.config.slots, &proc, Version::new(0, 1, 0)),
        Err(Error::UnknownRoot(_))
    ));
}

#[test]
fn a_tampered_kernel_is_refused_and_never_renamed_into_place() {
    let fx = fixture();
    let k = &fx.targets.targets["vmlinuz"];
    let path = fx
        .root
        .join("repo")
        .join(layout::TARGETS_DIR)
        .join(layout::target_file(&k.hashes.sha256, "vmlinuz"));
    fs::write(&path, b"kernel 6.6.6").unwrap();
    let mut e = fx.begun();
    let err = run(&mut e, &mut fx.source()).unwrap_err();
    assert!(
        matches!(err, Error::Update(rampart_update::Error::Digest { .. })),
        "{err}"
    );
    assert_eq!(e.journal().phase.name(), "slot-verified");
    assert!(!fx.config.esp.join("EFI/rampart/1.1.0/vmlinuz").exists());
    assert!(!fx
        .config
        .esp
        .join("EFI/rampart/1.1.0/.vmlinuz.tmp")
        .exists());
    assert!(!fx.entries().iter().any(|n| n.contains("1.1.0")));
    // With the right kernel back, the retry goes on from there.
    fs::write(&path, b"kernel 1.1.0").unwrap();
    run(&mut e, &mut fx.source()).unwrap();
    fx.assert_installed();
}
