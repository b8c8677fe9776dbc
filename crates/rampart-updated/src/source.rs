//! Where the release's target files come from. The engine asks for a file *from an offset to its end*, so a
//! resumed write fetches only the frames still missing: an HTTP source sends `Range: bytes=<offset>-`, a
//! directory (a mounted repository or an unpacked bundle) seeks. A source that cannot do ranges may read from
//! the start and discard; that is its own cost, and it should count it honestly.

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
