//! Writing the slot image chunk by chunk against the signed chunk index.
//!
//! Each chunk's zstd frame is fetched (only its bytes: the frame table gives offset and length), decompressed
//! into a buffer of exactly the chunk's length (a frame that expands further is refused, so a hostile frame
//! cannot make us allocate more), hashed and compared with the index, and only then written with `pwrite` at
//! its offset. Every `sync_every` written chunks the device is `fdatasync`ed and only *then* the journal's
//! `chunks_done` is raised, so the journal never claims a chunk that a power cut could lose.
//!
//! Resume: when the journal was already in `WritingSlot` at start (a crash, a reboot, a failed source), the whole
//! slot is re-hashed first and only chunks that do not verify are fetched; that also rewrites a chunk damaged on
//! the device below the journal's mark. The re-hash reads the local disk (seconds for 1 GiB); the download is
//! what resume saves. A fresh write skips the scan and writes everything.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rampart_update::chunks::ChunkIndex;

use crate::error::io;
use crate::plan::PlanTarget;
use crate::source::ReleaseSource;
use crate::Error;

/// What a run moved, for progress and for tests that prove a resume fetched only what was missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Compressed bytes read from the source.
    pub fetched: u64,
    /// Bytes decompressed (and hashed).
    pub decompressed: u64,
    /// Bytes written to the slot device.
    pub written: u64,
    pub chunks_written: usize,
    /// Chunks found good on the slot at resume and not fetched.
    pub chunks_skipped: usize,
}

#[derive(Debug)]
pub struct SlotJob<'a> {
    pub index: &'a ChunkIndex,
    pub rootfs: &'a PlanTarget,
    pub device: &'a Path,
    /// Re-hash the slot and fetch only the chunks that do not verify.
    pub rescan: bool,
    pub sync_every: usize,
}

/// The frame table must exist and span exactly the signed rootfs target.
pub fn check_frames(index: &ChunkIndex, rootfs: &PlanTarget) -> Result<(), Error> {
    if !index.has_frames() {
        return Err(Error::NoFrameTable);
    }
    if index.compressed_length() != rootfs.file.length {
        return Err(Error::FrameTable {
            frames: index.compressed_length(),
            target: rootfs.file.length,
        });
    }
    Ok(())
}

pub fn open_device(path: &Path, needed: u64) -> Result<File, Error> {
    // Never created or truncated: it is a partition (or, in tests, a file made beforehand).
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open the slot device", path))?;
    // The size of a block device is where its end is; metadata().len() is 0 for one.
    let size = f.seek(SeekFrom::End(0)).map_err(io("size", path))?;
    if size < needed {
        return Err(Error::SlotTooSmall {
            path: path.into(),
            size,
            needed,
        });
    }
    Ok(f)
}

/// The chunks of the slot that do not match the index, in order.
pub fn bad_chunks(index: &ChunkIndex, device: &File, path: &Path) -> Result<Vec<usize>, Error> {
    let mut bad = Vec::new();
    let mut buf = Vec::new();
    for i in 0..index.count() {
        let chunk = index.chunk(i)?;
        buf.resize(len_usize(chunk.len), 0);
        match device.read_exact_at(&mut buf, chunk.offset) {
            Ok(()) if index.verify_chunk(i, &buf).is_ok() => {}
            Ok(()) => bad.push(i),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => bad.push(i),
            Err(e) => return Err(io("read the slot device", path)(e)),
        }
    }
    Ok(bad)
}

/// Writes the slot. `on_sync(n)` is called after each fdatasync with "every chunk below n is durable";
/// `progress(chunks_done, bytes_done)` after each chunk.
pub fn write_slot(
    job: &SlotJob<'_>,
    source: &mut dyn ReleaseSource,
    counters: &mut Counters,
    on_sync: &mut dyn FnMut(usize) -> Result<(), Error>,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<(), Error> {
    let index = job.index;
    check_frames(index, job.rootfs)?;
    let device = open_device(job.device, index.length())?;
    let todo: Vec<usize> = if job.rescan {
        bad_chunks(index, &device, job.device)?
    } else {
        (0..index.count()).collect()
    };
    let skipped = index.count() - todo.len();
    counters.chunks_skipped += skipped;
    let mut done_chunks = skipped;
    let mut done_bytes = index.length()
        - todo
            .iter()
            .map(|i| index.chunk(*i).map_or(0, |c| c.len))
            .sum::<u64>();
    progress(done_chunks, done_bytes);
    let sync_every = job.sync_every.max(1);
    let mut unsynced = 0usize;
    let what = || job.rootfs.name.clone();
    let mut frame = Vec::new();
    for run in runs(&todo) {
        let first = index.frame(run[0]).ok_or(Error::NoFrameTable)?;
        let mut reader = source.open(&job.rootfs.repo_path(), first.offset)?;
        for &i in run {
            let chunk = index.chunk(i)?;
            let f = index.frame(i).ok_or(Error::NoFrameTable)?;
            frame.resize(len_usize(f.len), 0);
            reader
                .read_exact(&mut frame)
                .map_err(|source| Error::Source {
                    what: what(),
                    source,
                })?;
            counters.fetched += f.len;
            let data = zstd::bulk::decompress(&frame, len_usize(chunk.len)).map_err(|source| {
                Error::Decompress {
                    index: i,
                    len: chunk.len,
                    source,
                }
            })?;
            counters.decompressed += data.len() as u64;
            // The signed hash decides; nothing unverified reaches the device.
            index.verify_chunk(i, &data)?;
            device
                .write_all_at(&data, chunk.offset)
                .map_err(io("write the slot device", job.device))?;
            counters.written += chunk.len;
            counters.chunks_written += 1;
            done_chunks += 1;
            done_bytes += chunk.len;
            unsynced += 1;
            if unsynced >= sync_every {
                device
                    .sync_data()
                    .map_err(io("sync the slot device", job.device))?;
                on_sync(i + 1)?;
                unsynced = 0;
            }
            progress(done_chunks, done_bytes);
        }
    }
    device
        .sync_data()
        .map_err(io("sync the slot device", job.device))?;
    on_sync(index.count())
}

/// Splits sorted indexes into runs of consecutive ones: one source request per run.
fn runs(todo: &[usize]) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=todo.len() {
        if k == todo.len() || todo[k] != todo[k - 1] + 1 {
            if start < k {
                out.push(&todo[start..k]);
            }
            start = k;
        }
    }
    out
}

/// Chunk and frame lengths are bounded by the index parser (256 MiB), so they fit.
fn len_usize(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Verifies the whole image on the device against the index's SHA-256. The device's cached pages are dropped
/// first (they are clean: written and fdatasynced), so what is hashed was read back from the device itself and
/// a write that never reached it cannot pass.
pub fn verify_slot(index: &ChunkIndex, path: &Path) -> Result<(), Error> {
    let f = File::open(path).map_err(io("open the slot device", path))?;
    // Advisory: a kernel that ignores it still gives correct (cached) bytes, so a failure is not fatal.
    let _ = nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    index.verify_image(std::io::BufReader::with_capacity(1 << 20, f))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_on_gaps() {
        let todo = [0, 1, 2, 5, 7, 8];
        assert_eq!(runs(&todo), vec![&[0, 1, 2][..], &[5][..], &[7, 8][..]]);
        assert!(runs(&[]).is_empty());
    }
}
