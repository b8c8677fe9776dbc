//! Checking what is on the slot against the signed chunk index, on several cores.
//!
//! Both the resume scan (which chunks must be fetched again) and the whole-slot verify after the write hash
//! every chunk of the image as it is on the device. The index's chunk digests cover every byte of the image
//! (the parser checks the lengths add up), so "every chunk matches" is the same statement as "the image
//! matches", and unlike one SHA-256 over the whole image it can be spread over threads: each takes the next
//! chunk, reads it with `pread` and hashes it. Reads stay close to sequential, since the threads take chunks in
//! order.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use rampart_update::chunks::ChunkIndex;

use crate::error::io;
use crate::Error;

/// At most this many threads hash or decompress chunks: beyond it the disk, not the CPU, sets the pace, and an
/// update should not take every core from the tenants of a big machine.
pub const MAX_WORKERS: usize = 4;

/// Threads for chunk work: the CPUs this process may use (std reads the cgroup's CPU quota too), 1..=MAX_WORKERS.
pub fn workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// Chunk and frame lengths are bounded by the index parser (256 MiB), so they fit.
pub fn len_usize(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// The chunks of the slot that do not match the index, in order: what a resumed write fetches again.
pub fn bad_chunks(index: &ChunkIndex, device: &File, path: &Path) -> Result<Vec<usize>, Error> {
    let all: Vec<usize> = (0..index.count()).collect();
    mismatched(index, device, path, &all, false)
}

/// Verifies the whole image on the device against the index. The device's cached pages are dropped first (they
/// are clean: written and fdatasynced), so what is hashed was read back from the device itself and a write that
/// never reached it cannot pass. The first chunk that does not match is the error.
pub fn verify_slot(index: &ChunkIndex, path: &Path) -> Result<(), Error> {
    let f = File::open(path).map_err(io("open the slot device", path))?;
    // Advisory: a kernel that ignores it still gives correct (cached) bytes, so a failure is not fatal.
    let _ = nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    let all: Vec<usize> = (0..index.count()).collect();
    match mismatched(index, &f, path, &all, true)?.first() {
        None => Ok(()),
        Some(&i) => {
            let c = index.chunk(i)?;
            Err(rampart_update::Error::ChunkMismatch {
                index: i,
                offset: c.offset,
                len: c.len,
            }
            .into())
        }
    }
}

/// The chunks among `which` whose bytes on `device` do not match the index (a short read counts as a
/// mismatch), in order. With `first_only`, the threads stop at the first mismatch found.
fn mismatched(
    index: &ChunkIndex,
    device: &File,
    path: &Path,
    which: &[usize],
    first_only: bool,
) -> Result<Vec<usize>, Error> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || -> Result<Vec<usize>, Error> {
        let mut bad = Vec::new();
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(&i) = which.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let chunk = index.chunk(i)?;
            buf.resize(len_usize(chunk.len), 0);
            let good = match device.read_exact_at(&mut buf, chunk.offset) {
                Ok(()) => index.verify_chunk(i, &buf).is_ok(),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(io("read the slot device", path)(e));
                }
            };
            if !good {
                bad.push(i);
                if first_only {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(bad)
    };
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers()).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut bad = Vec::new();
    for r in results {
        bad.extend(r?);
    }
    bad.sort_unstable();
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn every_damaged_or_missing_chunk_is_found_and_verify_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let img = image(4096 * 9 + 100);
        let index = ChunkIndex::build(&img[..], 4096).unwrap();
        let path = dir.path().join("slot");
        let mut slot = img.clone();
        slot[4096 * 2 + 5] ^= 1;
        slot[4096 * 7] ^= 0x80;
        // The device ends inside the last chunk: a short read is a mismatch, not an error.
        slot.truncate(4096 * 9 + 50);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&slot)
            .unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(bad_chunks(&index, &f, &path).unwrap(), [2, 7, 9]);
        let err = verify_slot(&index, &path).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Update(rampart_update::Error::ChunkMismatch { index: 2, .. })
            ),
            "{err}"
        );
        std::fs::write(&path, &img).unwrap();
        verify_slot(&index, &path).unwrap();
        assert!(bad_chunks(&index, &File::open(&path).unwrap(), &path)
            .unwrap()
            .is_empty());
    }
}
