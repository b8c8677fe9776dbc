//! `build`: a release from a built image: the compressed root filesystem, kernel, initrd and the chunk index
//! of the uncompressed image become targets, then targets, snapshot and timestamp are signed.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rampart_update::chunks::ChunkIndex;
use rampart_update::digest::Hasher;
use rampart_update::metadata::{kind, Common, ReleaseInfo, TargetCustom, TargetFile, Targets};
use rampart_update::release::parse_version;
use rampart_update::{layout, Role, UtcTime};

use crate::files::sync_dir;
use crate::repo::{Expiry, Repo};
use crate::KeyDir;

#[derive(Debug, Clone)]
pub struct Inputs {
    /// The slot image exactly as it is to be written (image/release: root-a's erofs, without the partition's padding).
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub version: String,
    pub min_installed_version: String,
    pub variant: String,
    pub chunk_size: u64,
    pub zstd_level: i32,
}

/// Target names (the part after the digest in `targets/`).
pub const ROOTFS_NAME: &str = "rootfs.img.zst";
pub const KERNEL_NAME: &str = "vmlinuz";
pub const INITRD_NAME: &str = "initrd.img";
pub const CHUNK_INDEX_NAME: &str = "rootfs.chunks.json";

pub fn build(repo: &Repo, keys: &KeyDir, inputs: &Inputs, expiry: Expiry) -> Result<()> {
    let version = parse_version("version", &inputs.version)?;
    let minimum = parse_version("min_installed_version", &inputs.min_installed_version)?;
    if minimum > version {
        bail!("--min-version {minimum} is above the release version {version}");
    }
    if inputs.variant.is_empty() || inputs.variant.contains(char::is_whitespace) {
        bail!("--variant {:?}: one word, e.g. x86_64", inputs.variant);
    }
    let dir = repo.targets_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut targets = Targets {
        // Version and expiry are set by publish.
        common: Common::new(Role::Targets, 1, UtcTime::new(std::time::UNIX_EPOCH)),
        targets: Default::default(),
        custom: ReleaseInfo {
            version: version.to_string(),
            min_installed_version: minimum.to_string(),
            variant: inputs.variant.clone(),
        },
    };

    let image = open(&inputs.rootfs)?;
    let index = ChunkIndex::build(BufReader::new(image), inputs.chunk_size)
        .with_context(|| format!("cannot index {}", inputs.rootfs.display()))?;
    let mut frames = Vec::with_capacity(index.count());
    let rootfs = stage(&dir, ROOTFS_NAME, |out| {
        // One zstd frame per chunk (see rampart_update::chunks: a resumed update fetches only missing frames).
        // The concatenation is one ordinary zstd stream to any decoder.
        let mut image = BufReader::new(open(&inputs.rootfs)?);
        let mut buf = Vec::new();
        for i in 0..index.count() {
            let chunk = index.chunk(i)?;
            buf.clear();
            (&mut image)
                .take(chunk.len)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", inputs.rootfs.display()))?;
            if buf.len() as u64 != chunk.len {
                bail!(
                    "{} changed while it was compressed",
                    inputs.rootfs.display()
                );
            }
            let mut encoder = zstd::Encoder::new(Vec::new(), inputs.zstd_level).context("zstd")?;
            // Checksums inside the frame catch a corrupt download before the digests do; cheap.
            encoder.include_checksum(true).context("zstd")?;
            encoder.write_all(&buf).context("zstd")?;
            let frame = encoder.finish().context("zstd")?;
            out.write_all(&frame)?;
            frames.push(frame.len() as u64);
        }
        Ok(())
    })?;
    let index = index.with_frames(frames)?;
    if index.compressed_length() != rootfs.length {
        bail!("the frame table does not add up to the compressed rootfs (a bug)");
    }
    let index_bytes = index.to_bytes();
    let chunk_index = stage(&dir, CHUNK_INDEX_NAME, |out| {
        Ok(out.write_all(&index_bytes)?)
    })?;
    let kernel = stage(&dir, KERNEL_NAME, |out| copy(&inputs.kernel, out))?;
    let initrd = stage(&dir, INITRD_NAME, |out| copy(&inputs.initrd, out))?;
    for (name, k, file) in [
        (ROOTFS_NAME, kind::ROOTFS, rootfs),
        (CHUNK_INDEX_NAME, kind::CHUNK_INDEX, chunk_index),
        (KERNEL_NAME, kind::KERNEL, kernel),
        (INITRD_NAME, kind::INITRD, initrd),
    ] {
        targets.targets.insert(
            name.to_owned(),
            TargetFile {
                custom: TargetCustom { kind: k.to_owned() },
                ..file
            },
        );
    }
    sync_dir(&dir)?;
    repo.publish(targets, &[keys], expiry)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn copy(path: &Path, out: &mut dyn Write) -> Result<()> {
    std::io::copy(&mut open(path)?, out)
        .with_context(|| format!("cannot copy {}", path.display()))?;
    Ok(())
}

/// Writes a target through `fill` into a temp file while hashing, then renames it to `<sha256>.<name>`.
fn stage(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<TargetFile> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hasher: Hasher::default(),
    };
    fill(&mut out)?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let (length, hashes) = out.hasher.finish();
    let path = dir.join(layout::target_file(&hashes.sha256, name));
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(TargetFile {
        length,
        hashes,
        custom: TargetCustom {
            kind: String::new(),
        },
    })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
