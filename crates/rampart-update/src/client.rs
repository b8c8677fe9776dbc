//! The whole TUF client walk over a [`Source`]: roots one by one, then timestamp, snapshot and targets. The
//! device daemon implements `Source` over HTTPS (and over a bundle); the release tool's `verify` uses the same
//! walk, so what the operator checks is what devices do.

use crate::layout;
use crate::verify::Trusted;
use crate::Error;

/// TUF's default bound on root versions fetched in one walk: a hostile mirror cannot make us loop.
pub const MAX_ROOT_STEPS: u64 = 1024;

/// Where metadata comes from. `Ok(None)` means "not there" (HTTP 404, no such entry): that ends the root chain.
/// Implementations must stop reading after `cap + 1` bytes; the verifier then refuses the file as too large.
pub trait Source {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, Error>;
}

pub fn refresh(
    trusted: &mut Trusted,
    source: &mut dyn Source,
    limits: crate::Limits,
) -> Result<(), Error> {
    for _ in 0..MAX_ROOT_STEPS {
        let name = layout::versioned(trusted.root().common.version + 1, layout::ROOT);
        match source.metadata(&name, limits.root)? {
            Some(bytes) => trusted.update_root(&bytes)?,
            None => break,
        }
    }
    let bytes = required(source, layout::TIMESTAMP, limits.timestamp)?;
    trusted.update_timestamp(&bytes)?;
    let snapshot = trusted.snapshot_version().unwrap_or(0);
    let name = metadata_name(trusted, snapshot, layout::SNAPSHOT);
    let bytes = required(source, &name, limits.snapshot)?;
    trusted.update_snapshot(&bytes)?;
    let targets = trusted.targets_version().unwrap_or(0);
    let name = metadata_name(trusted, targets, layout::TARGETS);
    let bytes = required(source, &name, limits.targets)?;
    trusted.update_targets(&bytes)
}

fn metadata_name(trusted: &Trusted, version: u64, name: &str) -> String {
    if trusted.root().consistent_snapshot {
        layout::versioned(version, name)
    } else {
        name.to_owned()
    }
}

fn required(source: &mut dyn Source, name: &str, cap: u64) -> Result<Vec<u8>, Error> {
    source
        .metadata(name, cap)?
        .ok_or_else(|| Error::BundleMissing {
            what: format!("metadata/{name}"),
        })
}

/// Reads at most `cap + 1` bytes, so an oversized file is refused by the verifier without being read whole.
pub fn read_capped(reader: impl std::io::Read, cap: u64, what: &str) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader.take(cap.saturating_add(1)), &mut bytes)
        .map_err(Error::io("read", what))?;
    Ok(bytes)
}
