//! What applying an update costs (`make bench`, through `tests/bench/update`).
//!
//! - **Apply against a raw write of the same image.** The engine's whole apply: each zstd frame read from a local
//!   repository, decompressed, hashed against the signed chunk index, written with `pwrite`, `fdatasync` every
//!   16 chunks with the journal after it, then the whole slot re-read from the device and verified, then kernel,
//!   initrd and the boot entry. Against: the uncompressed slot image copied to the same kind of file in 4 MiB
//!   writes with one `fdatasync` at the end (`dd bs=4M conv=fsync`), and the payload merely decompressed onto
//!   the slot (`zstd -d | dd`), which shows what the checks, the journal and the re-read cost on their own. The
//!   three alternate, `REPS` times; medians. Target ≤ 1.2× the raw write. The network is not in it: the HTTPS
//!   source's own cost is one TLS stream.
//! - **The size of a full update**: what a device downloads (metadata, rootfs target, chunk index, kernel and
//!   initrd). Target ≤ 200 MiB.
//! - **A resume after the connection drops at 50 % of the rootfs download**: bytes fetched twice. Target: only the
//!   chunk that was in flight.
//!
//! The image: `RAMPART_BENCH_ROOTFS` (the slot image as shipped; `tests/bench/update` cuts root-a's erofs,
//! without the partition's padding, out of build/rampart.raw) with `RAMPART_BENCH_KERNEL` and
//! `RAMPART_BENCH_INITRD`. Without them a synthetic 256 MiB image (a quarter random, the rest text-like and
//! zeros), and the size line says that it is not the product's.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rampart_release::build::{Inputs, ROOTFS_NAME};
use rampart_update::chunks::{ChunkIndex, DEFAULT_CHUNK_SIZE};
use rampart_updated::settings::DEFAULT_SYNC_EVERY;
use rampart_updated::source::{DirSource, ReleaseSource};
use rampart_updated::state::Phase;
use rampart_updated::Error;

const REPS: usize = 3;
const MIB: f64 = 1024.0 * 1024.0;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A synthetic slot image: random quarter (incompressible), text-like half, zero quarter (empty blocks).
fn synthetic(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = vec![0u8; len];
    for (i, b) in data.iter_mut().enumerate().take(len * 3 / 4) {
        if i < len / 4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        } else {
            *b = b"systemd unit sandbox rampart "[(i / 3) % 29];
        }
    }
    fs::write(path, data).unwrap();
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).map(PathBuf::from)
}

/// `dd if=<image> of=<slot> bs=4M conv=fsync,notrunc`.
fn raw_write(image: &Path, slot: &Path) -> Duration {
    let start = Instant::now();
    let mut src = File::open(image).unwrap();
    let mut dst = fs::OpenOptions::new().write(true).open(slot).unwrap();
    let mut buf = vec![0u8; DEFAULT_CHUNK_SIZE as usize];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).unwrap();
    }
    dst.sync_data().unwrap();
    start.elapsed()
}

/// `zstd -d < rootfs.img.zst | dd of=<slot> bs=4M conv=fsync,notrunc`: the payload put on the slot with nothing
/// checked, resumable or journaled.
fn raw_decompress(target: &Path, slot: &Path) -> Duration {
    let start = Instant::now();
    let mut dst = fs::OpenOptions::new().write(true).open(slot).unwrap();
    zstd::stream::copy_decode(File::open(target).unwrap(), &mut dst).unwrap();
    dst.sync_data().unwrap();
    start.elapsed()
}

/// One apply: its whole time and the time of each phase, in order.
struct Applied {
    total: Duration,
    phases: Vec<(&'static str, Duration)>,
}

/// A fresh device under `dir` and the whole apply from the repository, timed from `begin` to the boot entry.
fn apply(dir: &Path, repo: &Path, slot_len: u64) -> Applied {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let device = common::Device::new(dir, slot_len, DEFAULT_SYNC_EVERY);
    let mut engine = device.engine();
    let start = Instant::now();
    device.begin(&mut engine, repo, &mut DirSource::new(repo));
    let mut marks = vec![("metadata", start)];
    engine
        .run(&mut DirSource::new(repo), &mut |p| {
            if marks.last().is_some_and(|(name, _)| *name != p.phase) {
                marks.push((p.phase, Instant::now()));
            }
        })
        .unwrap();
    let end = Instant::now();
    assert!(matches!(engine.journal().phase, Phase::EntryWritten { .. }));
    let phases = marks
        .iter()
        .enumerate()
        .map(|(i, (name, at))| (*name, marks.get(i + 1).map_or(end, |m| m.1) - *at))
        .collect();
    Applied {
        total: end - start,
        phases,
    }
}

/// The repository, counting the bytes of the rootfs target it hands out (partial frames included) and failing
/// like a dropped connection once `budget` of them have gone.
struct Metered {
    inner: DirSource,
    budget: u64,
    read: u64,
}

struct MeteredRead<'a> {
    inner: Box<dyn Read + 'a>,
    budget: &'a mut u64,
    read: &'a mut u64,
}

impl Read for MeteredRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if *self.budget == 0 {
            return Err(std::io::Error::other("connection reset"));
        }
        let n = buf
            .len()
            .min(usize::try_from(*self.budget).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..n])?;
        *self.budget -= n as u64;
        *self.read += n as u64;
        Ok(n)
    }
}

impl ReleaseSource for Metered {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        let inner = self.inner.open(repo_path, offset)?;
        if repo_path.ends_with(ROOTFS_NAME) {
            Ok(Box::new(MeteredRead {
                inner,
                budget: &mut self.budget,
                read: &mut self.read,
            }))
        } else {
            Ok(inner)
        }
    }
}

/// Drops the connection at half the rootfs target, restarts the engine from its journal (as after a reboot) and
/// finishes; returns (bytes received before the cut, after it, the target's size, its largest frame).
fn interrupted(dir: &Path, repo: &Path, slot_len: u64, index: &ChunkIndex) -> (u64, u64, u64, u64) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let device = common::Device::new(dir, slot_len, DEFAULT_SYNC_EVERY);
    let total = index.compressed_length();
    let mut engine = device.engine();
    device.begin(&mut engine, repo, &mut DirSource::new(repo));
    let mut cut = Metered {
        inner: DirSource::new(repo),
        budget: total / 2,
        read: 0,
    };
    let err = engine.run(&mut cut, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Source { .. }), "{err}");
    drop(engine);
    let mut engine = device.engine();
    let mut rest = Metered {
        inner: DirSource::new(repo),
        budget: u64::MAX,
        read: 0,
    };
    engine.run(&mut rest, &mut |_| {}).unwrap();
    assert!(matches!(engine.journal().phase, Phase::EntryWritten { .. }));
    let largest = (0..index.count())
        .filter_map(|i| index.frame(i))
        .map(|f| f.len)
        .max()
        .unwrap_or(0);
    (cut.read, rest.read, total, largest)
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let t = tmp.path();
    let (image, kernel, initrd, product) = match (
        env_path("RAMPART_BENCH_ROOTFS"),
        env_path("RAMPART_BENCH_KERNEL"),
        env_path("RAMPART_BENCH_INITRD"),
    ) {
        (Some(r), Some(k), Some(i)) => (r, k, i, true),
        _ => {
            let r = t.join("synthetic.img");
            synthetic(&r, 256 << 20);
            fs::write(t.join("vmlinuz"), vec![7u8; 8 << 20]).unwrap();
            fs::write(t.join("initrd.img"), vec![9u8; 32 << 20]).unwrap();
            (r, t.join("vmlinuz"), t.join("initrd.img"), false)
        }
    };
    let slot_len = fs::metadata(&image).unwrap().len();
    println!(
        "apply bench: {} ({:.0} MiB slot image){}",
        image.display(),
        slot_len as f64 / MIB,
        if product {
            ""
        } else {
            " — synthetic, not the product's image"
        }
    );
    let started = Instant::now();
    let repo = common::signed_release_of(
        t,
        &Inputs {
            rootfs: image.clone(),
            kernel,
            initrd,
            version: "1.1.0".into(),
            min_installed_version: "0.1.0".into(),
            variant: "x86_64".into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            zstd_level: 19,
        },
    );
    println!(
        "release built (zstd 19, {} MiB chunks) in {:.0} s",
        DEFAULT_CHUNK_SIZE >> 20,
        started.elapsed().as_secs_f64()
    );
    let targets = repo.dir.join("targets");
    let index_path = fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("rootfs.chunks.json"))
        .unwrap();
    let index = ChunkIndex::parse(&fs::read(index_path).unwrap()).unwrap();
    let payload = dir_size(&targets) + dir_size(&repo.dir.join("metadata"));
    let rootfs = index.compressed_length();

    let raw_slot = t.join("raw-slot");
    File::create(&raw_slot).unwrap().set_len(slot_len).unwrap();
    let rootfs_target = fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(ROOTFS_NAME))
        .unwrap();
    let (mut raws, mut unpacks, mut applies) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        raws.push(raw_write(&image, &raw_slot));
        unpacks.push(raw_decompress(&rootfs_target, &raw_slot));
        applies.push(apply(&t.join("device"), &repo.dir, slot_len));
    }
    let raw = median(raws);
    let unpack = median(unpacks);
    applies.sort_by_key(|a| a.total);
    let median_apply = &applies[applies.len() / 2];
    let applied = median_apply.total;
    let (before, after, total, largest) = interrupted(&t.join("cut"), &repo.dir, slot_len, &index);
    let twice = (before + after).saturating_sub(total);

    println!();
    println!("| what | figure | target |");
    println!("|---|---|---|");
    println!(
        "| raw write of the slot image (4 MiB writes, one fdatasync), median of {REPS} | {:.2} s ({:.0} MiB/s) | |",
        raw.as_secs_f64(),
        slot_len as f64 / MIB / raw.as_secs_f64()
    );
    println!(
        "| the payload decompressed onto the slot (`zstd -d` into it, one fdatasync), median of {REPS} | {:.2} s ({:.0} MiB/s) | |",
        unpack.as_secs_f64(),
        slot_len as f64 / MIB / unpack.as_secs_f64()
    );
    println!(
        "| apply (fetch, decompress, verify, write, sync, whole-slot verify, boot files), median of {REPS} | {:.2} s ({:.0} MiB/s) | |",
        applied.as_secs_f64(),
        slot_len as f64 / MIB / applied.as_secs_f64()
    );
    for (name, took) in &median_apply.phases {
        println!(
            "| …of which the step from {name} | {:.2} s | |",
            took.as_secs_f64()
        );
    }
    println!(
        "| apply / raw write | {:.2}× | ≤ 1.2× |",
        applied.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "| apply / the payload decompressed onto the slot | {:.2}× | |",
        applied.as_secs_f64() / unpack.as_secs_f64()
    );
    println!(
        "| full update download (metadata + targets){} | {:.1} MiB (rootfs {:.1} MiB) | ≤ 200 MiB |",
        if product { "" } else { ", synthetic image" },
        payload as f64 / MIB,
        rootfs as f64 / MIB
    );
    println!(
        "| cut at 50 %: fetched before / after the resume / total | {:.1} / {:.1} / {:.1} MiB | |",
        before as f64 / MIB,
        after as f64 / MIB,
        total as f64 / MIB
    );
    println!(
        "| …fetched twice | {:.2} MiB (largest frame {:.2} MiB) | ≤ the chunk in flight |",
        twice as f64 / MIB,
        largest as f64 / MIB
    );
}
