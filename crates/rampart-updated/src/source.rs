//! Where the release's target files come from. The engine asks for a file *from an offset to its end*, so a
//! resumed write fetches only the frames still missing: an HTTP source sends `Range: bytes=<offset>-`, a
//! directory (a mounted repository or an unpacked bundle) seeks. A source that cannot do ranges may read from
//! the start and discard; that is its own cost, and it should count it honestly.
//!
//! [`DirSource`] is also the metadata side (`rampart_update::client::Source`), so one configured directory
//! serves the whole TUF walk and then the targets.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::io;
use crate::Error;

pub trait ReleaseSource {
    /// The file at `repo_path` (`targets/<sha256>.<name>`) from byte `offset` on.
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error>;
}

/// A release repository (or unpacked bundle) in a local directory.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> DirSource {
        DirSource { root: root.into() }
    }
}

impl DirSource {
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl rampart_update::client::Source for DirSource {
    /// `metadata/<name>`, read up to `cap + 1` bytes; a missing file is `None` (the end of the root chain).
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, rampart_update::Error> {
        rampart_update::target_path::check(name)?;
        let path = self
            .root
            .join(rampart_update::layout::METADATA_DIR)
            .join(name);
        match File::open(&path) {
            Ok(f) => Ok(Some(rampart_update::client::read_capped(f, cap, name)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(rampart_update::Error::Io {
                op: "open",
                what: format!("metadata/{name}"),
                source,
            }),
        }
    }
}

impl ReleaseSource for DirSource {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        // Paths come from verified metadata (rampart_update::target_path refuses `..` and absolute names).
        let path = self.root.join(repo_path);
        let mut f = File::open(&path).map_err(io("open", &path))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io("seek in", &path))?;
        Ok(Box::new(f))
    }
}
