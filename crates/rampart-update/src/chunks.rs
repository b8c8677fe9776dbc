//! The chunk index of a slot image: fixed-size chunks of the *uncompressed* image with a SHA-256 each, plus the
//! total length and the whole image's SHA-256.
//!
//! The updater decompresses the rootfs target into the inactive slot; with the index it can check each chunk as
//! it lands, resume after a power cut at the first chunk that does not verify ([`ChunkIndex::first_bad`]), and
//! verify the whole slot at the end before it writes the boot entry. The index is itself a target (length and
//! digests in signed targets metadata), so its integrity comes from there. Rejected: a Merkle tree (dm-verity's
//! job on the device, not the download's) and content-defined chunking (nothing to deduplicate between slots).

use std::io::{Read, Seek, SeekFrom};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    chunk_size: u64,
    length: u64,
    sha256: [u8; 32],
    chunks: Vec<[u8; 32]>,
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
        })
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
        for (i, c) in file.chunks.iter().enumerate() {
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
                .map(|c| ChunkEntry {
                    length: c.len,
                    sha256: hex::encode(c.sha256),
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

    /// The first chunk of `slot` that does not verify (`count()` when all do): where a resumed write starts.
    pub fn first_bad(&self, slot: &mut (impl Read + Seek)) -> Result<usize, Error> {
        let mut buf = Vec::new();
        for index in 0..self.count() {
            let chunk = self.chunk(index)?;
            slot.seek(SeekFrom::Start(chunk.offset))
                .map_err(Error::io("seek in", "the slot"))?;
            buf.resize(usize::try_from(chunk.len).unwrap_or(usize::MAX), 0);
            let n = read_full(slot, &mut buf).map_err(Error::io("read", "the slot"))?;
            if n != buf.len() || self.verify_chunk(index, &buf).is_err() {
                return Ok(index);
            }
        }
        Ok(self.count())
    }

    /// Verifies the whole image: exactly `length()` bytes from `slot`'s start, SHA-256 equal to the index's.
    /// A slot device is usually bigger than the image: bytes after `length()` are not read.
    pub fn verify_image(&self, slot: impl Read) -> Result<(), Error> {
        let mut hasher = Sha256::new();
        let copied = std::io::copy(&mut slot.take(self.length), &mut HashWriter(&mut hasher))
            .map_err(Error::io("read", "the slot"))?;
        let digest: [u8; 32] = hasher.finalize().into();
        if copied != self.length || digest != self.sha256 {
            return Err(Error::Digest {
                what: "slot image".into(),
                algorithm: "sha256",
            });
        }
        Ok(())
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
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
        parsed.verify_image(&img[..]).unwrap();
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
        assert!(matches!(
            index.verify_image(&bad[..]),
            Err(Error::Digest { .. })
        ));
        assert!(matches!(
            index.verify_image(&img[..100]),
            Err(Error::Digest { .. })
        ));
        // A bigger slot is fine: only length() bytes count.
        let mut slot = img.clone();
        slot.extend_from_slice(&[0u8; 5000]);
        index.verify_image(&slot[..]).unwrap();
    }

    #[test]
    fn resume_finds_first_bad_chunk() {
        let img = image(4 * 4096);
        let index = ChunkIndex::build(&img[..], 4096).unwrap();
        let mut slot = img.clone();
        assert_eq!(
            index.first_bad(&mut std::io::Cursor::new(&slot)).unwrap(),
            4
        );
        slot[2 * 4096..].fill(0);
        assert_eq!(
            index.first_bad(&mut std::io::Cursor::new(&slot)).unwrap(),
            2
        );
        slot.truncate(4096 + 10);
        assert_eq!(
            index.first_bad(&mut std::io::Cursor::new(&slot)).unwrap(),
            1
        );
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
