//! Writing the slot image chunk by chunk against the signed chunk index.
//!
//! Each chunk's zstd frame is fetched (only its bytes: the frame table gives offset and length), decompressed
//! into a buffer of exactly the chunk's length (a frame that expands further is refused, so a hostile frame
//! cannot make us allocate more), hashed and compared with the index, and only then written with `pwrite` at
//! its offset. Every `sync_every` written chunks the device is `fdatasync`ed and only *then* the journal's
//! `chunks_done` is raised, so the journal never claims a chunk that a power cut could lose.
//!
//! A pipeline: this thread fetches frames in order and writes chunks in order, while up to
//! [`workers`](crate::slot_check::workers) threads decompress and hash the frames in between. At most a few
//! chunks are in flight (bounded memory), and the writes, syncs, journal marks and progress happen in the same
//! order as a sequential loop's: a chunk that fails its hash is an error only once every chunk before it is
//! written, and a source that fails mid-way first lets the chunks already fetched be checked and written.
//!
//! Resume: when the journal was already in `WritingSlot` at start (a crash, a reboot, a failed source), the whole
//! slot is re-hashed first and only chunks that do not verify are fetched; that also rewrites a chunk damaged on
//! the device below the journal's mark. The re-hash reads the local disk (seconds for 1 GiB); the download is
//! what resume saves. A fresh write skips the scan and writes everything.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rampart_update::chunks::ChunkIndex;

use crate::error::io;
use crate::plan::PlanTarget;
use crate::slot_check::{bad_chunks, len_usize, workers};
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
    let missing: u64 = todo
        .iter()
        .map(|i| index.chunk(*i).map_or(0, |c| c.len))
        .sum();
    let n = workers();
    thread::scope(|s| {
        let (done_tx, done_rx) = mpsc::channel();
        let mut to_workers = Vec::with_capacity(n);
        for _ in 0..n {
            // One frame waiting per worker; the writer's limit below bounds the rest.
            let (tx, rx) = mpsc::sync_channel::<Frame>(1);
            let done_tx = done_tx.clone();
            s.spawn(move || {
                for f in rx {
                    let data = decode(index, f.chunk, &f.bytes);
                    // The frame's bytes are dropped here: only the chunk waits for the writer.
                    let d = Decoded {
                        seq: f.seq,
                        chunk: f.chunk,
                        data,
                    };
                    if done_tx.send(d).is_err() {
                        break;
                    }
                }
            });
            to_workers.push(tx);
        }
        drop(done_tx);
        let mut w = Writer {
            job,
            device: &device,
            counters,
            on_sync,
            progress,
            done_chunks: skipped,
            done_bytes: index.length() - missing,
            unsynced: 0,
            pending: BTreeMap::new(),
            next_seq: 0,
            in_flight: 0,
            limit: n + 2,
            done: done_rx,
            failed: false,
        };
        (w.progress)(w.done_chunks, w.done_bytes);
        let fetched = fetch(job, source, &todo, &mut w, &to_workers);
        // Closing the workers' queues ends them once they have handed back what they hold.
        drop(to_workers);
        // What was fetched is written (or its refusal reported) before a source error is; after a refusal or a
        // failed write nothing more is written, since the journal's mark must never pass a missing chunk.
        while !w.failed && w.in_flight > 0 {
            w.receive()?;
        }
        fetched?;
        device
            .sync_data()
            .map_err(io("sync the slot device", job.device))?;
        (w.on_sync)(index.count())
    })
}

/// A fetched frame on its way to a worker; `seq` is its place in the write order.
struct Frame {
    seq: usize,
    chunk: usize,
    bytes: Vec<u8>,
}

/// A worker's answer: the chunk's verified bytes, or why it has none.
struct Decoded {
    seq: usize,
    chunk: usize,
    data: Result<Vec<u8>, Error>,
}

/// Decompresses one frame into exactly its chunk's length and checks the signed hash: nothing unverified
/// reaches the device.
fn decode(index: &ChunkIndex, i: usize, frame: &[u8]) -> Result<Vec<u8>, Error> {
    let chunk = index.chunk(i)?;
    let data = zstd::bulk::decompress(frame, len_usize(chunk.len)).map_err(|source| {
        Error::Decompress {
            index: i,
            len: chunk.len,
            source,
        }
    })?;
    index.verify_chunk(i, &data)?;
    Ok(data)
}

/// Reads the frames of the chunks in `todo` from the source, one request per run of consecutive chunks, and
/// hands them to the workers in turn, writing whatever comes back in between.
fn fetch(
    job: &SlotJob<'_>,
    source: &mut dyn ReleaseSource,
    todo: &[usize],
    w: &mut Writer<'_, '_>,
    to_workers: &[mpsc::SyncSender<Frame>],
) -> Result<(), Error> {
    let index = job.index;
    let mut seq = 0;
    for run in runs(todo) {
        let first = index.frame(run[0]).ok_or(Error::NoFrameTable)?;
        let mut reader = source.open(&job.rootfs.repo_path(), first.offset)?;
        for &i in run {
            let f = index.frame(i).ok_or(Error::NoFrameTable)?;
            let mut bytes = vec![0; len_usize(f.len)];
            reader
                .read_exact(&mut bytes)
                .map_err(|source| Error::Source {
                    what: job.rootfs.name.clone(),
                    source,
                })?;
            w.counters.fetched += f.len;
            while w.in_flight >= w.limit {
                w.receive()?;
            }
            let frame = Frame {
                seq,
                chunk: i,
                bytes,
            };
            to_workers[seq % to_workers.len()]
                .send(frame)
                .map_err(|_| worker_gone())?;
            w.in_flight += 1;
            seq += 1;
        }
    }
    Ok(())
}

fn worker_gone() -> Error {
    Error::Task("a chunk worker of the slot write stopped".into())
}

/// The in-order end of the pipeline: writes, syncs, journal marks and progress.
struct Writer<'a, 'j> {
    job: &'a SlotJob<'j>,
    device: &'a File,
    counters: &'a mut Counters,
    on_sync: &'a mut dyn FnMut(usize) -> Result<(), Error>,
    progress: &'a mut dyn FnMut(usize, u64),
    done_chunks: usize,
    done_bytes: u64,
    unsynced: usize,
    /// Decoded chunks that came back before one ahead of them in the write order, by `seq`.
    pending: BTreeMap<usize, Decoded>,
    next_seq: usize,
    /// Frames handed out and not yet written: at most `limit`.
    in_flight: usize,
    limit: usize,
    done: mpsc::Receiver<Decoded>,
    /// A chunk was refused or its write failed: nothing after it may be written.
    failed: bool,
}

impl Writer<'_, '_> {
    /// Waits for one decoded chunk and writes every chunk that is now next in order.
    fn receive(&mut self) -> Result<(), Error> {
        let d = self.done.recv().map_err(|_| worker_gone())?;
        self.pending.insert(d.seq, d);
        while let Some(d) = self.pending.remove(&self.next_seq) {
            self.next_seq += 1;
            self.in_flight -= 1;
            if let Err(e) = d.data.and_then(|data| self.write(d.chunk, data)) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(())
    }

    fn write(&mut self, i: usize, data: Vec<u8>) -> Result<(), Error> {
        let path = self.job.device;
        let chunk = self.job.index.chunk(i)?;
        self.counters.decompressed += data.len() as u64;
        self.device
            .write_all_at(&data, chunk.offset)
            .map_err(io("write the slot device", path))?;
        self.counters.written += chunk.len;
        self.counters.chunks_written += 1;
        self.done_chunks += 1;
        self.done_bytes += chunk.len;
        self.unsynced += 1;
        if self.unsynced >= self.job.sync_every.max(1) {
            self.device
                .sync_data()
                .map_err(io("sync the slot device", path))?;
            (self.on_sync)(i + 1)?;
            self.unsynced = 0;
        }
        (self.progress)(self.done_chunks, self.done_bytes);
        Ok(())
    }
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
