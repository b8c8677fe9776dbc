//! `make bench` (cargo bench -p rampart-updated): what an update costs on this machine.
//!
//! - payload: the compressed root image a full update downloads (target ≤ 200 MiB);
//! - apply: the engine from a verified plan to the boot entry (stream + verify every chunk, fsync, re-read and
//!   hash the whole slot, kernel/initrd, entry) against the baseline measured in the same run: a raw copy of the
//!   same uncompressed image onto a slot file with one fsync (target ≤ 1.2×);
//! - interruption: the source fails at 50 % of the rootfs download; a second engine resumes from the journal, and
//!   the bytes it fetches again are counted (target: only the unfinished chunks).
//!
//! The image is the real root-a slot when `BENCH_ROOTFS` names one (make bench cuts it from build/rampart.raw),
//! otherwise 256 MiB of synthetic data shaped like it (a compressed filesystem, then zeros to the partition end).
//! Deltas from the chunk index are not implemented, so there is no delta figure.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use rampart_update::chunks::DEFAULT_CHUNK_SIZE;
use rampart_update::client;
use rampart_update::{Limits, Trusted};
use rampart_updated::source::{DirSource, ReleaseSource};
use rampart_updated::{Config, Engine, Error, Slot, Slots, System};
use semver::Version;

const MIB: f64 = 1024.0 * 1024.0;
/// Chunks the engine writes between journal syncs: a resume fetches at most this many again.
const SYNC_EVERY: usize = 16;
const ROOT_A: &str =
    "root=PARTUUID=817a5b33-81ac-4807-8c2c-5577dd010395 rootfstype=erofs ro panic=10";

/// Counts the rootfs bytes it serves and fails after `limit` of them (the network dropping mid-download).
struct Counting {
    inner: DirSource,
    served: Rc<Cell<u64>>,
    limit: Option<u64>,
}

struct CountingRead<'a> {
    inner: Box<dyn Read + 'a>,
    served: Rc<Cell<u64>>,
    limit: Option<u64>,
}

impl Read for CountingRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.limit.is_some_and(|l| self.served.get() >= l) {
            return Err(std::io::Error::other("connection dropped (benchmark)"));
        }
        let n = self.inner.read(buf)?;
        self.served.set(self.served.get() + n as u64);
        Ok(n)
    }
}

impl ReleaseSource for Counting {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        let inner = self.inner.open(repo_path, offset)?;
        if !repo_path.ends_with(".rootfs.img.zst") {
            return Ok(inner);
        }
        Ok(Box::new(CountingRead {
            inner,
            served: Rc::clone(&self.served),
            limit: self.limit,
        }))
    }
}

fn image() -> (Vec<u8>, String) {
    if let Some(path) = std::env::var_os("BENCH_ROOTFS") {
        let what = format!(
            "the root-a slot of the built image ({})",
            Path::new(&path).display()
        );
        return (fs::read(&path).unwrap(), what);
    }
    let len = 256 << 20;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let image = (0..len)
        .map(|i| {
            if i < len * 3 / 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            } else {
                0
            }
        })
        .collect();
    (
        image,
        "256 MiB synthetic (3/8 random, then zeros)".to_owned(),
    )
}

/// A device as the image leaves it (running 0.1.0 from root-a), the release verified and begun.
fn device(t: &Path, repo: &Path, len: usize) -> (Engine, Config, System, Slots) {
    let esp = t.join("esp");
    fs::create_dir_all(esp.join("loader/entries")).unwrap();
    fs::write(
        esp.join("loader/entries/rampart-0.1.0.conf"),
        format!("title Rampart 0.1.0\nversion 0.1.0\nsort-key rampart\noptions {ROOT_A}\n"),
    )
    .unwrap();
    let dev = t.join("dev");
    fs::create_dir_all(&dev).unwrap();
    let slots = Slots::image().with_dev_dir(&dev);
    fs::write(slots.device(Slot::B), vec![0u8; len]).unwrap();
    let config = Config {
        slots: slots.clone(),
        esp,
        state_dir: t.join("state"),
        var_lib: t.join("var/lib/rampart"),
        snapshot_dir: t.join("snapshots"),
        sync_every: SYNC_EVERY,
        kernel_options: None,
        boot_tries: rampart_updated::boot::TRIES,
    };
    let system = System {
        booted: slots.booted(ROOT_A).unwrap(),
        running_version: Version::new(0, 1, 0),
        boot_id: "bench".into(),
    };
    let mut engine = Engine::open(config.clone(), system.clone()).unwrap();
    let root = fs::read(repo.join("metadata/1.root.json")).unwrap();
    let mut trusted = Trusted::new(
        &root,
        SystemTime::now(),
        engine.journal().known_versions,
        Limits::default(),
    )
    .unwrap();
    client::refresh(&mut trusted, &mut DirSource::new(repo), Limits::default()).unwrap();
    engine.record_trust(&trusted).unwrap();
    engine.begin(&trusted.release().unwrap(), "x86_64").unwrap();
    (engine, config, system, slots)
}

fn main() {
    let (image, what) = image();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let t = tmp.path();
    let started = Instant::now();
    let repo = common::signed_release_of(&t.join("release"), &image, DEFAULT_CHUNK_SIZE, 19);
    let release_secs = started.elapsed().as_secs_f64();
    let payload: u64 = fs::read_dir(repo.dir.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rootfs.img.zst"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();

    // Baseline: the same uncompressed image copied onto a slot file, one fsync.
    let raw = t.join("raw-slot");
    let started = Instant::now();
    let mut from = File::open(t.join("release/root-a.img")).unwrap();
    let mut to = File::create(&raw).unwrap();
    std::io::copy(&mut from, &mut to).unwrap();
    to.sync_all().unwrap();
    let raw_secs = started.elapsed().as_secs_f64();
    drop(to);
    fs::remove_file(&raw).unwrap();

    // Apply, uninterrupted.
    let dir = t.join("device-1");
    let (mut engine, ..) = device(&dir, &repo.dir, image.len());
    let started = Instant::now();
    engine
        .run(&mut DirSource::new(&repo.dir), &mut |_| {})
        .unwrap();
    let apply_secs = started.elapsed().as_secs_f64();
    drop(engine);
    fs::remove_dir_all(&dir).unwrap();

    // Interrupted at 50 % of the download, then resumed by a new engine (a restart after the crash).
    let dir = t.join("device-2");
    let (mut engine, config, system, _) = device(&dir, &repo.dir, image.len());
    let served = Rc::new(Cell::new(0));
    let mut cut = Counting {
        inner: DirSource::new(&repo.dir),
        served: Rc::clone(&served),
        limit: Some(payload / 2),
    };
    assert!(
        engine.run(&mut cut, &mut |_| {}).is_err(),
        "the cut must interrupt the apply"
    );
    let first = served.get();
    drop(engine);
    let mut engine = Engine::open(config, system).unwrap();
    let again = Rc::new(Cell::new(0));
    let mut rest = Counting {
        inner: DirSource::new(&repo.dir),
        served: Rc::clone(&again),
        limit: None,
    };
    engine.run(&mut rest, &mut |_| {}).unwrap();
    let refetched = (first + again.get()).saturating_sub(payload);

    println!("\n== update apply — cargo bench -p rampart-updated ({what})");
    println!(
        "image {:.1} MiB; release built in {release_secs:.1} s (zstd 19, {} MiB chunks)",
        image.len() as f64 / MIB,
        DEFAULT_CHUNK_SIZE >> 20
    );
    println!(
        "payload of a full update: {:.1} MiB ({payload} bytes; target <= 200 MiB)",
        payload as f64 / MIB
    );
    println!(
        "baseline raw copy + fsync: {raw_secs:.2} s ({:.0} MiB/s)",
        image.len() as f64 / MIB / raw_secs
    );
    println!(
        "apply (stream, verify chunks, fsync, re-read + hash slot, boot files, entry): {apply_secs:.2} s = {:.2}x the raw copy (target <= 1.2x)",
        apply_secs / raw_secs
    );
    println!(
        "interrupted at {:.1} MiB of {:.1} MiB: the resumed run fetched {:.1} MiB, {:.1} MiB of it again ({:.1} % of the payload; at most {} chunks' worth is unavoidable)",
        first as f64 / MIB,
        payload as f64 / MIB,
        again.get() as f64 / MIB,
        refetched as f64 / MIB,
        refetched as f64 * 100.0 / payload as f64,
        SYNC_EVERY
    );
    println!("delta updates from the chunk index: not implemented (every update is full)");
}
