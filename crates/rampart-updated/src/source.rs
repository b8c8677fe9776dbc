//! Where the release's target files come from. The engine asks for a file *from an offset to its end*, so a
//! resumed write fetches only the frames still missing: an HTTP source sends `Range: bytes=<offset>-`, a
//! directory (a mounted repository or an unpacked bundle) seeks. A source that cannot do ranges may read from
//! the start and discard; that is its own cost, and it should count it honestly.
//!
//! [`DirSource`] is also the metadata side (`rampart_update::client::Source`), so one configured directory
//! serves the whole TUF walk and then the targets; so is the HTTPS source, and [`AnySource`] is either.
//! [`Cancellable`] wraps any of them so an administrator's Cancel stops a long slot write at its next read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::io;
use crate::https_source::HttpsSource;
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

/// A source whose reads fail once an administrator cancelled, so a long slot write stops within one read.
pub struct Cancellable<'a> {
    pub inner: &'a mut dyn ReleaseSource,
    pub flag: &'a AtomicBool,
}

impl std::fmt::Debug for Cancellable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancellable")
            .field("cancelled", &self.flag.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl ReleaseSource for Cancellable<'_> {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        if self.flag.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        let inner = self.inner.open(repo_path, offset)?;
        Ok(Box::new(CancelRead {
            inner,
            flag: self.flag,
        }))
    }
}

struct CancelRead<'a> {
    inner: Box<dyn Read + 'a>,
    flag: &'a AtomicBool,
}

impl Read for CancelRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.flag.load(Ordering::SeqCst) {
            // Not `Interrupted`: readers retry that.
            return Err(std::io::Error::other("cancelled by an administrator"));
        }
        self.inner.read(buf)
    }
}

/// The configured source, whichever kind.
#[derive(Debug)]
pub enum AnySource {
    Dir(DirSource),
    Https(HttpsSource),
}

impl ReleaseSource for AnySource {
    fn open(&mut self, repo_path: &str, offset: u64) -> Result<Box<dyn Read + '_>, Error> {
        match self {
            AnySource::Dir(s) => s.open(repo_path, offset),
            AnySource::Https(s) => s.open(repo_path, offset),
        }
    }
}

impl rampart_update::client::Source for AnySource {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, rampart_update::Error> {
        match self {
            AnySource::Dir(s) => s.metadata(name, cap),
            AnySource::Https(s) => s.metadata(name, cap),
        }
    }
}
