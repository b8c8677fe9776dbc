//! `verify`: the device's checks, run by the operator before publishing (or on a bundle before carrying it).
//! Metadata through `rampart_update::client::refresh` from a trusted root file; then every target's length and
//! digests, the chunk index, and the decompressed root filesystem against the chunk index, chunk by chunk.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use rampart_update::bundle::{self, BundleMetadata};
use rampart_update::chunks::ChunkIndex;
use rampart_update::client::{self, read_capped, Source};
use rampart_update::release::{Installed, Release};
use rampart_update::{layout, Error, KnownVersions, Limits, Trusted};

/// What was verified, for the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    pub root_version: u64,
    pub targets_version: u64,
    pub version: String,
    pub variant: String,
    pub image_length: u64,
}

/// Metadata files from a repository directory.
struct DirSource<'a>(&'a Path);

impl Source for DirSource<'_> {
    fn metadata(&mut self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, Error> {
        let path = self.0.join(layout::METADATA_DIR).join(name);
        match File::open(&path) {
            Ok(f) => read_capped(f, cap, name).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                op: "open",
                what: path.display().to_string(),
                source,
            }),
        }
    }
}

fn trusted(root: &Path, source: &mut dyn Source) -> Result<Trusted> {
    let limits = Limits::default();
    let bytes = read_capped(
        File::open(root).with_context(|| format!("cannot open trusted root {}", root.display()))?,
        limits.root,
        "trusted root",
    )?;
    let mut trusted = Trusted::new(&bytes, SystemTime::now(), KnownVersions::default(), limits)
        .with_context(|| format!("trusted root {} refused", root.display()))?;
    client::refresh(&mut trusted, source, limits)?;
    Ok(trusted)
}

pub fn repo(root: &Path, dir: &Path, installed: Option<&Installed>) -> Result<Summary> {
    let trusted = trusted(root, &mut DirSource(dir))?;
    let release = trusted.release()?;
    check_device(&release, installed)?;
    let open = |t: rampart_update::release::Target<'_>| -> Result<Box<dyn Read>> {
        let path = dir.join(t.repo_path());
        Ok(Box::new(BufReader::new(File::open(&path).with_context(
            || format!("cannot open {}", path.display()),
        )?)))
    };
    let index = check_index(&release, open(release.chunk_index)?)?;
    check_rootfs(&release, &index, open(release.rootfs)?)?;
    release.kernel.reader(open(release.kernel)?).finish()?;
    release.initrd.reader(open(release.initrd)?).finish()?;
    Ok(summary(&trusted, &release, &index))
}

pub fn bundle(root: &Path, path: &Path, installed: Option<&Installed>) -> Result<Summary> {
    let open = || -> Result<BufReader<File>> {
        Ok(BufReader::new(File::open(path).with_context(|| {
            format!("cannot open {}", path.display())
        })?))
    };
    let cap = Limits::default().targets.max(Limits::default().root);
    let mut metadata = BundleMetadata::read(open()?, cap)?;
    let trusted = trusted(root, &mut metadata)?;
    let release = trusted.release()?;
    check_device(&release, installed)?;
    // Second pass over the tar: targets in bundle order (the index comes before the rootfs).
    let mut index = None;
    let mut seen = Vec::new();
    bundle::for_each_target(open()?, |name, reader| {
        let rel = format!("{}/{name}", layout::TARGETS_DIR);
        let refuse = |e: anyhow::Error| Error::BundleEntry {
            path: format!("{rel}: {e:#}"),
            reason: "does not verify",
        };
        if rel == release.chunk_index.repo_path() {
            index = Some(check_index(&release, reader).map_err(refuse)?);
        } else if rel == release.rootfs.repo_path() {
            let Some(index) = &index else {
                return Err(Error::BundleEntry {
                    path: rel,
                    reason: "comes before the chunk index",
                });
            };
            check_rootfs(&release, index, reader).map_err(refuse)?;
        } else if rel == release.kernel.repo_path() {
            release.kernel.reader(reader).finish()?;
        } else if rel == release.initrd.repo_path() {
            release.initrd.reader(reader).finish()?;
        } else {
            return Err(Error::BundleEntry {
                path: rel,
                reason: "is not a target of this release",
            });
        }
        seen.push(rel);
        Ok(())
    })?;
    for t in [
        release.rootfs,
        release.chunk_index,
        release.kernel,
        release.initrd,
    ] {
        if !seen.contains(&t.repo_path()) {
            bail!("bundle lacks {}", t.repo_path());
        }
    }
    let index = index.context("bundle lacks the chunk index")?;
    Ok(summary(&trusted, &release, &index))
}

fn check_device(release: &Release<'_>, installed: Option<&Installed>) -> Result<()> {
    if let Some(device) = installed {
        release.check_installable(device)?;
    }
    Ok(())
}

fn check_index(release: &Release<'_>, reader: impl Read) -> Result<ChunkIndex> {
    let mut target = release.chunk_index.reader(reader);
    let bytes = read_capped(&mut target, release.chunk_index.file.length, "chunk index")?;
    target.finish()?;
    let index = ChunkIndex::parse(&bytes)?;
    // The device applies only indexes with a frame table that spans exactly the rootfs target.
    if !index.has_frames() {
        bail!("the chunk index has no zstd frame table; devices refuse it (rebuild with this rampart-release)");
    }
    if index.compressed_length() != release.rootfs.file.length {
        bail!(
            "the chunk index's frames add up to {} bytes, the rootfs target is {}",
            index.compressed_length(),
            release.rootfs.file.length
        );
    }
    Ok(index)
}

/// Decompresses the rootfs target and checks every chunk and the whole image against the index.
fn check_rootfs(release: &Release<'_>, index: &ChunkIndex, reader: impl Read) -> Result<()> {
    let mut target = release.rootfs.reader(reader);
    {
        let mut decoder = zstd::Decoder::new(&mut target).context("rootfs target is not zstd")?;
        let mut buf = Vec::new();
        for i in 0..index.count() {
            let chunk = index.chunk(i)?;
            buf.clear();
            (&mut decoder)
                .take(chunk.len)
                .read_to_end(&mut buf)
                .context("cannot decompress the rootfs target")?;
            index.verify_chunk(i, &buf)?;
        }
        let mut rest = [0u8; 1];
        if decoder
            .read(&mut rest)
            .context("cannot decompress the rootfs target")?
            != 0
        {
            bail!(
                "the rootfs target decompresses to more than the chunk index's {} bytes",
                index.length()
            );
        }
    }
    target.finish()?;
    Ok(())
}

fn summary(trusted: &Trusted, release: &Release<'_>, index: &ChunkIndex) -> Summary {
    Summary {
        root_version: trusted.root().common.version,
        targets_version: trusted.targets().map_or(0, |t| t.common.version),
        version: release.version.to_string(),
        variant: release.info.variant.clone(),
        image_length: index.length(),
    }
}
