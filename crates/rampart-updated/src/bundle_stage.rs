//! An offline bundle becomes a directory source: the tar is unpacked into a private staging directory under the
//! state directory, then read like a mounted repository. Simple and honest: the engine seeks in plain files, the
//! TUF walk reads plain files, and nothing in the tar is trusted before the metadata verifies it.
//!
//! Unpacking never extracts by path: only regular files named `metadata/<name>` or `targets/<name>` (a plain,
//! checked file name) are taken, each capped, and the whole under a total cap; anything else refuses the bundle.
//! It goes to `<staging>.tmp` first and is renamed into place, with a stamp of the bundle's size and mtime, so a
//! second Check of the same file does not unpack gigabytes again and a half-unpacked tree is never used.
//! Rejected: reading targets straight from the tar (a resume would re-read the tar from its start to the frame;
//! an entry-offset table would be a new signed format).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rampart_update::layout;

use crate::error::io;
use crate::source::DirSource;
use crate::Error;

/// The stamp file inside the staging directory (a dot name: never a metadata or target name).
const STAMP: &str = ".bundle-stamp";

/// Caps on what a bundle may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Any one `metadata/` entry.
    pub metadata: u64,
    /// All entries together.
    pub total: u64,
}

impl Default for Caps {
    /// Metadata as `rampart_update::Limits` allows at most (targets are the biggest); 16 GiB in all (a slot
    /// image is a few GiB compressed).
    fn default() -> Caps {
        Caps {
            metadata: 1024 * 1024,
            total: 16 << 30,
        }
    }
}

/// Unpacks `bundle` into `staging` (unless the same bundle is there already) and returns it as a source.
pub fn stage(bundle: &Path, staging: &Path, caps: Caps) -> Result<DirSource, Error> {
    let meta = fs::metadata(bundle).map_err(io("read", bundle))?;
    let stamp = format!("{} {} {}\n", bundle.display(), meta.len(), meta.mtime());
    if fs::read_to_string(staging.join(STAMP)).is_ok_and(|s| s == stamp) {
        return Ok(DirSource::new(staging));
    }
    let tmp = PathBuf::from(format!("{}.tmp", staging.display()));
    remove_dir(&tmp)?;
    for dir in [layout::METADATA_DIR, layout::TARGETS_DIR] {
        fs::create_dir_all(tmp.join(dir)).map_err(io("create", tmp.join(dir)))?;
    }
    let file = File::open(bundle).map_err(io("open", bundle))?;
    unpack(file, &tmp, caps)?;
    fs::write(tmp.join(STAMP), stamp).map_err(io("write", tmp.join(STAMP)))?;
    remove_dir(staging)?;
    fs::rename(&tmp, staging).map_err(io("rename into place", staging))?;
    Ok(DirSource::new(staging))
}

fn remove_dir(dir: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", dir)(e)),
        _ => Ok(()),
    }
}

fn refuse(path: &str, reason: &'static str) -> Error {
    Error::Update(rampart_update::Error::BundleEntry {
        path: path.to_owned(),
        reason,
    })
}

fn unpack(reader: impl Read, dest: &Path, caps: Caps) -> Result<(), Error> {
    let bundle_err = |source| Error::Source {
        what: "bundle".into(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut total = 0u64;
    for entry in archive.entries().map_err(bundle_err)? {
        let mut entry = entry.map_err(bundle_err)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(refuse(&path, "not a regular file"));
        }
        let (dir, name) = path
            .split_once('/')
            .filter(|(d, _)| *d == layout::METADATA_DIR || *d == layout::TARGETS_DIR)
            .ok_or_else(|| refuse(&path, "not under metadata/ or targets/"))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(refuse(&path, "not a plain file name"));
        }
        rampart_update::target_path::check(name).map_err(|_| refuse(&path, "unsafe name"))?;
        let size = entry.size();
        if dir == layout::METADATA_DIR && size > caps.metadata {
            return Err(refuse(&path, "metadata entry larger than its cap"));
        }
        total = total.saturating_add(size);
        if total > caps.total {
            return Err(refuse(&path, "the bundle unpacks to more than its cap"));
        }
        let out_path = dest.join(dir).join(name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out_path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => refuse(&path, "appears twice"),
                _ => io("create", &out_path)(e),
            })?;
        // The header's size is what tar reads; `take` makes the cap hold whatever the reader does.
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut out).map_err(bundle_err)?;
        if copied != size {
            return Err(refuse(&path, "shorter than its header says"));
        }
        out.flush().map_err(io("write", &out_path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_and_refuses_escapes_and_oversize() {
        let dir = tempfile::tempdir().unwrap();
        let caps = Caps {
            metadata: 8,
            total: 32,
        };
        let fresh = |n: &str| {
            let d = dir.path().join(n);
            for sub in ["metadata", "targets"] {
                fs::create_dir_all(d.join(sub)).unwrap();
            }
            d
        };
        let ok = tar_of(&[
            ("metadata/1.root.json", b"{}"),
            ("targets/abc.vmlinuz", b"k"),
        ]);
        let d = fresh("ok");
        unpack(&ok[..], &d, caps).unwrap();
        assert_eq!(fs::read(d.join("targets/abc.vmlinuz")).unwrap(), b"k");
        for (entries, want) in [
            (vec![("etc/passwd", &b"x"[..])], "not under"),
            (vec![("metadata/big.json", &[0u8; 9][..])], "cap"),
            (
                vec![("targets/a", &[0u8; 20][..]), ("targets/b", &[0u8; 20][..])],
                "more than",
            ),
            (vec![("targets/.hidden", &b"x"[..])], "plain"),
            (
                vec![("targets/a", &b"x"[..]), ("targets/a", &b"y"[..])],
                "twice",
            ),
        ] {
            let d = fresh("bad");
            let err = unpack(&tar_of(&entries)[..], &d, caps)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{entries:?}: {err}");
            fs::remove_dir_all(&d).unwrap();
        }
    }
}
