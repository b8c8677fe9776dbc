//! Lengths and SHA-256 + SHA-512 digests of metadata and target files, computed while streaming.

use std::io::{self, Read};

use sha2::{Digest, Sha256, Sha512};

use crate::metadata::Hashes;
use crate::Error;

/// Digests of a byte slice.
pub fn hashes(bytes: &[u8]) -> Hashes {
    let mut h = Hasher::default();
    h.update(bytes);
    h.finish().1
}

/// Length and digests of everything read from `reader`.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(u64, Hashes)> {
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

#[derive(Debug, Default, Clone)]
pub struct Hasher {
    len: u64,
    sha256: Sha256,
    sha512: Sha512,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.sha256.update(bytes);
        self.sha512.update(bytes);
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (u64, Hashes) {
        (
            self.len,
            Hashes {
                sha256: hex::encode(self.sha256.finalize()),
                sha512: hex::encode(self.sha512.finalize()),
            },
        )
    }
}

/// Checks a computed length and digests against the metadata's.
pub fn check(
    what: &str,
    expected_len: u64,
    expected: &Hashes,
    found_len: u64,
    found: &Hashes,
) -> Result<(), Error> {
    if found_len != expected_len {
        return Err(Error::Length {
            what: what.to_owned(),
            expected: expected_len,
            found: found_len,
        });
    }
    // Lowercase hex on both sides: our own output and the metadata we wrote; anything else simply mismatches.
    if found.sha256 != expected.sha256 {
        return Err(Error::Digest {
            what: what.to_owned(),
            algorithm: "sha256",
        });
    }
    if found.sha512 != expected.sha512 {
        return Err(Error::Digest {
            what: what.to_owned(),
            algorithm: "sha512",
        });
    }
    Ok(())
}

/// A reader that hashes what passes through and fails as soon as more than `length` bytes arrive, so a target
/// can be decompressed and written while it downloads; [`TargetReader::finish`] then says whether it was right.
#[derive(Debug)]
pub struct TargetReader<R> {
    inner: R,
    what: String,
    length: u64,
    hashes: Hashes,
    hasher: Hasher,
}

impl<R: Read> TargetReader<R> {
    pub fn new(inner: R, what: impl Into<String>, length: u64, hashes: Hashes) -> TargetReader<R> {
        TargetReader {
            inner,
            what: what.into(),
            length,
            hashes,
            hasher: Hasher::default(),
        }
    }

    /// Reads what is left and checks length and digests.
    pub fn finish(mut self) -> Result<(), Error> {
        io::copy(&mut self, &mut io::sink()).map_err(|source| {
            match source.get_ref().and_then(|e| e.downcast_ref::<TooLong>()) {
                Some(_) => Error::Length {
                    what: self.what.clone(),
                    expected: self.length,
                    found: self.length + 1,
                },
                None => Error::Io {
                    op: "read",
                    what: self.what.clone(),
                    source,
                },
            }
        })?;
        let (len, found) = self.hasher.finish();
        check(&self.what, self.length, &self.hashes, len, &found)
    }
}

#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("longer than the metadata says")
    }
}

impl std::error::Error for TooLong {}

impl<R: Read> Read for TargetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never read past length + 1: one byte too many is enough to know, and bounds the work an endless
        // stream can cause.
        let left = (self.length + 1).saturating_sub(self.hasher.len());
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        if self.hasher.len() > self.length {
            return Err(io::Error::new(io::ErrorKind::InvalidData, TooLong));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_reader_accepts_exact_and_refuses_changes() {
        let data = b"kernel bytes".to_vec();
        let (len, h) = hash_reader(&data[..]).unwrap();
        TargetReader::new(&data[..], "vmlinuz", len, h.clone())
            .finish()
            .unwrap();

        let mut longer = data.clone();
        longer.push(b'!');
        assert!(matches!(
            TargetReader::new(&longer[..], "vmlinuz", len, h.clone()).finish(),
            Err(Error::Length { .. })
        ));
        assert!(matches!(
            TargetReader::new(&data[..4], "vmlinuz", len, h.clone()).finish(),
            Err(Error::Length { .. })
        ));
        let mut flipped = data.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            TargetReader::new(&flipped[..], "vmlinuz", len, h.clone()).finish(),
            Err(Error::Digest {
                algorithm: "sha256",
                ..
            })
        ));
        let wrong512 = Hashes {
            sha512: hashes(b"other").sha512,
            ..h
        };
        assert!(matches!(
            TargetReader::new(&data[..], "vmlinuz", len, wrong512).finish(),
            Err(Error::Digest {
                algorithm: "sha512",
                ..
            })
        ));
    }
}
