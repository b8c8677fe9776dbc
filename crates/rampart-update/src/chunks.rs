//! The chunk index of a slot image: fixed-size chunks of the *uncompressed* image with a SHA-256 each, plus the
//! total length and the whole image's SHA-256.
//!
//! The updater decompresses the rootfs target into the inactive slot; with the index it can check each chunk as
//! it lands, find after a power cut the chunks that do not verify, and verify the whole slot at the end, chunk
//! by chunk, before it writes the boot entry ([`ChunkIndex::verify_chunk`]; rampart-updated's slot_check). The
//! index is itself a target (length and digests in signed targets metadata), so its integrity comes from there. Rejected: a Merkle tree (dm-verity's
//! job on the device, not the download's) and content-defined chunking (nothing to deduplicate between slots).
//!
//! Frame table: the release tool compresses the rootfs target as one zstd frame per chunk (concatenated frames
//! are still one valid zstd stream, so a plain decoder reads it whole) and records each frame's offset and length
//! in the compressed target ([`ChunkIndex::frame`]). A resumed update then fetches (HTTP range, or a seek in a
//! bundle) and decompresses only the frames of the chunks still missing, instead of the whole target again.
//! The table is optional in the format (an index without it is valid; the updater refuses to apply it), and when
//! present it must cover every chunk, contiguously from offset 0. Rejected: zstd's seekable format (a skippable
//! trailer frame the zstd crate does not read, and the table would then live outside signed metadata).

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

pub const DEFAULT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// At 4 MiB chunks this is 256 GiB; it bounds the memory a hostile index can cost.
pub const MAX_CHUNKS: usize = 65_536;
/// Chunks between 4 KiB and 256 MiB.
const MIN_CHUNK_SIZE: u64 = 4096;
const MAX_CHUNK_SIZE: u64 = 256 * 1024 * 1024;
/// A full index is ~100 bytes per chunk.
pub const MAX_INDEX_LEN: u64 = 128 * MAX_CHUNKS as u64;

/// One chunk: where it goes in the slot and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// Where chunk `i`'s zstd frame is in the compressed rootfs target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    chunk_size: u64,
    length: u64,
    sha256: [u8; 32],
    chunks: Vec<[u8; 32]>,
    /// Compressed frame length per chunk; empty when the index has no frame table.
    frames: Vec<u64>,
}

/// The file format (canonical JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    chunk_size: u64,
    length: u64,
    sha256: String,
    chunks: Vec<ChunkEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkEntry {
    length: u64,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zstd: Option<FrameEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameEntry {
    offset: u64,
    length: u64,
}

/// The most a zstd frame of `len` input bytes can be (ZSTD_compressBound is `len + len/256 + small`; this is
/// looser). A frame table entry above it is refused: it would only make the updater buffer more.
pub fn max_frame_len(len: u64) -> u64 {
    len + len / 128 + 1024
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::ChunkIndex {
        reason: reason.into(),
    }
}

impl ChunkIndex {
    /// Hashes an image (the slot's exact content) into an index.
    pub fn build(mut image: impl Read, chunk_size: u64) -> Result<ChunkIndex, Error> {
        check_chunk_size(chunk_size)?;
        let mut whole = Sha256::new();
        let mut chunks = Vec::new();
        let mut length = 0u64;
        let size =
            usize::try_from(chunk_size).map_err(|_| invalid("chunk size does not fit memory"))?;
        let mut buf = vec![0u8; size];
        loop {
            let n = read_full(&mut image, &mut buf).map_err(Error::io("read", "the image"))?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            chunks.push(Sha256::digest(&buf[..n]).into());
            length += n as u64;
            if chunks.len() > MAX_CHUNKS {
                return Err(invalid(format!(
                    "more than {MAX_CHUNKS} chunks; use bigger chunks"
                )));
            }
            if n < size {
                break;
            }
        }
        if length == 0 {
            return Err(invalid("the image is empty"));
        }
        Ok(ChunkIndex {
            chunk_size,
            length,
            sha256: whole.finalize().into(),
            chunks,
            frames: Vec::new(),
        })
    }

    /// Adds the frame table: the compressed length of each chunk's zstd frame, in order.
    pub fn with_frames(mut self, lengths: Vec<u64>) -> Result<ChunkIndex, Error> {
        if lengths.len() != self.chunks.len() {
            return Err(invalid(format!(
                "{} frames for {} chunks",
                lengths.len(),
                self.chunks.len()
            )));
        }
        for (i, len) in lengths.iter().enumerate() {
            let chunk = self.chunk(i)?;
            if *len == 0 || *len > max_frame_len(chunk.len) {
                return Err(invalid(format!(
                    "frame {i} is {len} bytes for a {}-byte chunk",
                    chunk.len
                )));
            }
        }
        self.frames = lengths;
        Ok(self)
    }

    /// Whether the index carries a frame table.
    pub fn has_frames(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Chunk `index`'s frame in the compressed target, if the index has a frame table.
    pub fn frame(&self, index: usize) -> Option<Frame> {
        let len = *self.frames.get(index)?;
        Some(Frame {
            offset: self.frames[..index].iter().sum(),
            len,
        })
    }

    /// The compressed target's length according to the frame table (0 without one).
    pub fn compressed_length(&self) -> u64 {
        self.frames.iter().sum()
    }

    /// Parses and checks an index: sizes in range, every chunk but the last full, the last non-empty, lengths
    /// summing to the total, digests 64 hex digits.
    pub fn parse(bytes: &[u8]) -> Result<ChunkIndex, Error> {
        if bytes.len() as u64 > MAX_INDEX_LEN {
            return Err(Error::TooLarge {
                what: "chunk index".into(),
                len: bytes.len() as u64,
                cap: MAX_INDEX_LEN,
            });
        }
        let file: IndexFile = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: "chunk index".into(),
            source,
        })?;
        check_chunk_size(file.chunk_size)?;
        if file.chunks.is_empty() {
            return Err(invalid("no chunks"));
        }
        if file.chunks.len() > MAX_CHUNKS {
            return Err(invalid(format!(
                "{} chunks, at most {MAX_CHUNKS}",
                file.chunks.len()
            )));
        }
        let last = file.chunks.len() - 1;
        let mut sum = 0u64;
        let mut chunks = Vec::with_capacity(file.chunks.len());
        let framed = file.chunks[0].zstd.is_some();
        let mut frames = Vec::new();
        let mut frame_end = 0u64;
        for (i, c) in file.chunks.iter().enumerate() {
            match (&c.zstd, framed) {
                (Some(f), true) => {
                    if f.offset != frame_end || f.length == 0 || f.length > max_frame_len(c.length)
                    {
                        return Err(invalid(format!(
                            "chunk {i}: frame of {} bytes at {} (expected a non-empty frame at {frame_end}, at most {} bytes)",
                            f.length,
                            f.offset,
                            max_frame_len(c.length)
                        )));
                    }
                    frame_end += f.length;
                    frames.push(f.length);
                }
                (None, false) => {}
                _ => {
                    return Err(invalid(format!(
                        "chunk {i}: the frame table must cover every chunk or none"
                    )))
                }
            }
            let ok = if i == last {
                c.length > 0 && c.length <= file.chunk_size
            } else {
                c.length == file.chunk_size
            };
            if !ok {
                return Err(invalid(format!(
                    "chunk {i} is {} bytes with chunk size {}",
                    c.length, file.chunk_size
                )));
            }
            sum += c.length;
            chunks.push(
                digest32(&c.sha256).ok_or_else(|| invalid(format!("chunk {i}: bad sha256")))?,
            );
        }
        if sum != file.length {
            return Err(invalid(format!(
                "chunks sum to {sum} bytes, the index says {}",
                file.length
            )));
        }
        Ok(ChunkIndex {
            chunk_size: file.chunk_size,
            length: file.length,
            sha256: digest32(&file.sha256).ok_or_else(|| invalid("bad image sha256"))?,
            chunks,
            frames,
        })
    }

    /// The file bytes (canonical JSON, so the same image always gives the same index).
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = IndexFile {
            chunk_size: self.chunk_size,
            length: self.length,
            sha256: hex::encode(self.sha256),
            chunks: (0..self.chunks.len())
                .filter_map(|i| self.chunk(i).ok())
                .enumerate()
                .map(|(i, c)| ChunkEntry {
                    length: c.len,
                    sha256: hex::encode(c.sha256),
                    zstd: self.frame(i).map(|f| FrameEntry {
                        offset: f.offset,
                        length: f.len,
                    }),
                })
                .collect(),
        };
        // Integers and strings only: canonical JSON cannot fail here.
        crate::canonical::to_vec(&file).unwrap_or_default()
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Total length of the image.
    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn image_sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn count(&self) -> usize {
        self.chunks.len()
    }

    pub fn chunk(&self, index: usize) -> Result<Chunk, Error> {
        let sha256 = *self.chunks.get(index).ok_or(Error::ChunkOutOfRange {
            index,
            count: self.chunks.len(),
        })?;
        let offset = index as u64 * self.chunk_size;
        Ok(Chunk {
            offset,
            len: self.chunk_size.min(self.length - offset),
            sha256,
        })
    }

    /// Checks one chunk's bytes (exactly its length) before or after it is written.
    pub fn verify_chunk(&self, index: usize, bytes: &[u8]) -> Result<(), Error> {
        let chunk = self.chunk(index)?;
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if bytes.len() as u64 != chunk.len || digest != chunk.sha256 {
            return Err(Error::ChunkMismatch {
                index,
                offset: chunk.offset,
                len: chunk.len,
            });
        }
        Ok(())
    }
}

fn check_chunk_size(size: u64) -> Result<(), Error> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
        return Err(invalid(format!(
            "chunk size {size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    Ok(())
}

fn digest32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

/// Reads until `buf` is full or EOF; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trip() {
        let img = image(3 * 4096 + 100);
        let index = ChunkIndex::build(&img[..], 4096).unwrap();
        assert_eq!(index.count(), 4);
        assert_eq!(index.length(), img.len() as u64);
        let parsed = ChunkIndex::parse(&index.to_bytes()).unwrap();
        assert_eq!(parsed, index);
        assert_eq!(parsed.to_bytes(), index.to_bytes());
        let last = parsed.chunk(3).unwrap();
        assert_eq!((last.offset, last.len), (3 * 4096, 100));
        for i in 0..4 {
            let c = parsed.chunk(i).unwrap();
            parsed
                .verify_chunk(i, &img[c.offset as usize..(c.offset + c.len) as usize])
                .unwrap();
        }
        // An exact multiple of the chunk size has no short last chunk.
        let even = ChunkIndex::build(&image(8192)[..], 4096).unwrap();
        assert_eq!(even.count(), 2);
        assert_eq!(even.chunk(1).unwrap().len, 4096);
    }

    #[test]
    fn corruption_is_detected() {
        let img = image(2 * 4096 + 10);
        let index = ChunkIndex::build(&img[..], 4096).unwrap();
        let mut bad = img.clone();
        bad[4096 + 5] ^= 0xff;
        assert!(matches!(
            index.verify_chunk(1, &bad[4096..8192]),
            Err(Error::ChunkMismatch { index: 1, .. })
        ));
        assert!(index.verify_chunk(0, &bad[0..4096]).is_ok());
        assert!(matches!(
            index.verify_chunk(0, &img[0..4095]),
            Err(Error::ChunkMismatch { .. })
        ));
        assert!(matches!(
            index.verify_chunk(3, &[]),
            Err(Error::ChunkOutOfRange { index: 3, count: 3 })
        ));
    }

    #[test]
    fn frame_table_round_trips_and_is_checked() {
        let index = ChunkIndex::build(&image(2 * 4096 + 10)[..], 4096).unwrap();
        assert!(!index.has_frames());
        assert!(index.frame(0).is_none());
        let framed = index.clone().with_frames(vec![100, 200, 30]).unwrap();
        assert_eq!(
            framed.frame(1),
            Some(Frame {
                offset: 100,
                len: 200
            })
        );
        assert_eq!(
            framed.frame(2),
            Some(Frame {
                offset: 300,
                len: 30
            })
        );
        assert_eq!(framed.compressed_length(), 330);
        let parsed = ChunkIndex::parse(&framed.to_bytes()).unwrap();
        assert_eq!(parsed, framed);
        // An index without frames still parses to the same thing as before.
        assert_eq!(ChunkIndex::parse(&index.to_bytes()).unwrap(), index);
        assert!(index.clone().with_frames(vec![1, 2]).is_err());
        assert!(index.clone().with_frames(vec![1, 0, 1]).is_err());
        assert!(index.clone().with_frames(vec![1, 1, 100_000]).is_err());
        let cases = [
            edit(&framed, |v| v["chunks"][1]["zstd"]["offset"] = 99.into()),
            edit(&framed, |v| {
                v["chunks"][2]["zstd"] = serde_json::Value::Null
            }),
            edit(&framed, |v| {
                v["chunks"][1].as_object_mut().unwrap().remove("zstd");
            }),
            edit(&framed, |v| v["chunks"][0]["zstd"]["length"] = 0.into()),
            edit(&framed, |v| v["chunks"][0]["zstd"]["extra"] = 0.into()),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            assert!(ChunkIndex::parse(bytes).is_err(), "case {i} was accepted");
        }
    }

    fn edit(index: &ChunkIndex, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&index.to_bytes()).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn inconsistent_indexes_are_refused() {
        let index = ChunkIndex::build(&image(2 * 4096 + 10)[..], 4096).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("length", edit(&index, |v| v["length"] = 9000.into())),
            (
                "zero chunk size",
                edit(&index, |v| v["chunk_size"] = 0.into()),
            ),
            (
                "short middle chunk",
                edit(&index, |v| v["chunks"][0]["length"] = 4000.into()),
            ),
            (
                "long last chunk",
                edit(&index, |v| v["chunks"][2]["length"] = 5000.into()),
            ),
            (
                "empty last chunk",
                edit(&index, |v| v["chunks"][2]["length"] = 0.into()),
            ),
            (
                "no chunks",
                edit(&index, |v| v["chunks"] = serde_json::json!([])),
            ),
            (
                "bad digest",
                edit(&index, |v| v["chunks"][1]["sha256"] = "zz".into()),
            ),
            ("unknown field", edit(&index, |v| v["extra"] = 1.into())),
        ];
        for (name, bytes) in cases {
            assert!(ChunkIndex::parse(&bytes).is_err(), "{name} was accepted");
        }
        let many = edit(&index, |v| {
            let entry = serde_json::json!({"length": 4096, "sha256": "00".repeat(32)});
            v["chunks"] = serde_json::Value::Array(vec![entry; MAX_CHUNKS + 1]);
            v["length"] = (4096 * (MAX_CHUNKS as u64 + 1)).into();
        });
        match ChunkIndex::parse(&many) {
            Err(Error::ChunkIndex { reason }) => {
                assert!(reason.contains("chunks, at most"), "{reason}")
            }
            Err(Error::TooLarge { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ChunkIndex::parse(&vec![b' '; MAX_INDEX_LEN as usize + 1]),
            Err(Error::TooLarge { .. })
        ));
    }
}
