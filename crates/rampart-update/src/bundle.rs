//! The air-gapped bundle: the repository's tree (metadata, including every root version, then the current
//! release's targets) in one plain ustar file, so `tar tf` shows what is inside.
//!
//! Reading never extracts by path: entries are matched against expected names, only regular files are taken,
//! and metadata entries are capped before they are read. Entries are written in a fixed order with zeroed
//! owners and times, so the same repository gives the same bundle byte for byte. Rejected: zip (central
//! directory at the end: no streaming from a pipe) and compressing the tar (the rootfs target is compressed
//! already).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::client::Source;
use crate::{layout, target_path, Error};

pub struct BundleWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> std::fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter").finish_non_exhaustive()
    }
}

impl<W: Write> BundleWriter<W> {
    pub fn new(out: W) -> BundleWriter<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        BundleWriter { builder }
    }

    /// Adds `path` (`metadata/<name>` or `targets/<name>`) with `len` bytes from `data`.
    pub fn add(&mut self, path: &str, len: u64, data: impl Read) -> Result<(), Error> {
        split(path)?;
        let mut header = tar::Header::new_ustar();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, path, data)
            .map_err(Error::io("write bundle entry", path))
    }

    pub fn finish(self) -> Result<W, Error> {
        self.builder
            .into_inner()
            .map_err(Error::io("finish", "the bundle"))
    }
}

/// The metadata files of a bundle, by name (`timestamp.json`, `3.root.json`, ...).
#[derive(Debug, Default)]
pub struct BundleMetadata {
    files: BTreeMap<String, Vec<u8>>,
}

impl BundleMetadata {
    /// Reads every `metadata/` entry (each at most `cap` bytes) and skips targets.
    pub fn read(reader: impl Read, cap: u64) -> Result<BundleMetadata, Error> {
        let mut files = BTreeMap::new();
        for_each_entry(reader, |dir, name, size, entry| {
            if dir != layout::METADATA_DIR {
                return Ok(());
            }
            if size > cap {
                return Err(Error::TooLarge {
                    what: format!("bundle entry metadata/{name}"),
                    len: size,
                    cap,
                });
            }
            let bytes = crate::client::read_capped(entry, cap, name)?;
            if files.insert(name.to_owned(), bytes).is_some() {
                return Err(Error::BundleEntry {
                    path: format!("metadata/{name}"),
                    reason: "appears twice",
                });
            }
            Ok(())
        })?;
        Ok(BundleMetadata { files })
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }
}

impl Source for BundleMetadata {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.files.get(name).map(|b| {
            b[..b
                .len()
                .min(usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX))]
                .to_vec()
        }))
    }
}

/// Calls `f(name, reader)` for each `targets/<name>` entry, in bundle order.
pub fn for_each_target(
    reader: impl Read,
    mut f: impl FnMut(&str, &mut dyn Read) -> Result<(), Error>,
) -> Result<(), Error> {
    for_each_entry(reader, |dir, name, _size, entry| {
        if dir == layout::TARGETS_DIR {
            f(name, entry)
        } else {
            Ok(())
        }
    })
}

fn for_each_entry(
    reader: impl Read,
    mut f: impl FnMut(&str, &str, u64, &mut dyn Read) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(Error::io("read", "the bundle"))?;
    for entry in entries {
        let mut entry = entry.map_err(Error::io("read", "the bundle"))?;
        let raw = entry.path_bytes();
        let path = String::from_utf8(raw.into_owned()).map_err(|_| Error::BundleEntry {
            path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            reason: "name is not UTF-8",
        })?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(Error::BundleEntry {
                path,
                reason: "not a regular file",
            });
        }
        let (dir, name) = split(&path)?;
        let size = entry.size();
        f(dir, name, size, &mut entry)?;
    }
    Ok(())
}

/// `metadata/<name>` or `targets/<name>`, `<name>` a plain file name.
fn split(path: &str) -> Result<(&str, &str), Error> {
    let refuse = |reason| Error::BundleEntry {
        path: path.to_owned(),
        reason,
    };
    let (dir, name) = path
        .split_once('/')
        .ok_or_else(|| refuse("not under metadata/ or targets/"))?;
    if dir != layout::METADATA_DIR && dir != layout::TARGETS_DIR {
        return Err(refuse("not under metadata/ or targets/"));
    }
    target_path::check(name).map_err(|_| refuse("unsafe name"))?;
    if name.contains('/') {
        return Err(refuse("nested directory"));
    }
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut w = BundleWriter::new(Vec::new());
        w.add("metadata/1.root.json", 3, &b"abc"[..]).unwrap();
        w.add("targets/ff.vmlinuz", 2, &b"xy"[..]).unwrap();
        let tar = w.finish().unwrap();
        let meta = BundleMetadata::read(&tar[..], 1024).unwrap();
        assert_eq!(meta.get("1.root.json"), Some(&b"abc"[..]));
        let mut seen = Vec::new();
        for_each_target(&tar[..], |name, r| {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            seen.push(format!("{name}={s}"));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["ff.vmlinuz=xy"]);
        assert!(matches!(
            BundleMetadata::read(&tar[..], 2),
            Err(Error::TooLarge { .. })
        ));

        let mut w = BundleWriter::new(Vec::new());
        for bad in [
            "../x",
            "metadata/../x",
            "etc/passwd",
            "targets/a/b",
            "metadata/",
        ] {
            assert!(w.add(bad, 0, &b""[..]).is_err(), "{bad}");
        }
    }
}
