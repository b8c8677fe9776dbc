//! `bundle`: the repository's current state in one tar file for air-gapped machines: every root version (a
//! device may be many behind), the timestamp, the current snapshot and targets, then the current targets.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use rampart_update::bundle::BundleWriter;
use rampart_update::layout;
use rampart_update::metadata::{Envelope, Snapshot};
use rampart_update::release::Release;

use crate::Repo;

pub fn write(repo: &Repo, out: &Path) -> Result<()> {
    let root = repo.root()?;
    let targets = repo
        .targets()?
        .context("the repository has no release yet: run `rampart-release build`")?;
    let release = Release::from_targets(&targets)?;
    let snapshot_path = repo.metadata_dir().join(layout::SNAPSHOT);
    let snapshot: Envelope<Snapshot> = serde_json::from_slice(
        &std::fs::read(&snapshot_path)
            .with_context(|| format!("cannot read {}", snapshot_path.display()))?,
    )
    .with_context(|| format!("{} is not valid metadata", snapshot_path.display()))?;

    let mut metadata = Vec::new();
    for v in 1..=root.common.version {
        metadata.push(layout::versioned(v, layout::ROOT));
    }
    metadata.push(layout::TIMESTAMP.to_owned());
    metadata.push(layout::versioned(
        snapshot.signed.common.version,
        layout::SNAPSHOT,
    ));
    metadata.push(layout::versioned(targets.common.version, layout::TARGETS));

    let tmp = out.with_extension("tmp");
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut writer = BundleWriter::new(BufWriter::new(file));
    for name in &metadata {
        let path = repo.metadata_dir().join(name);
        add(
            &mut writer,
            &format!("{}/{name}", layout::METADATA_DIR),
            &path,
        )?;
    }
    // The chunk index before the rootfs: a device reading the tar from a pipe checks chunks as they come.
    for target in [
        release.chunk_index,
        release.rootfs,
        release.kernel,
        release.initrd,
    ] {
        let rel = target.repo_path();
        add(&mut writer, &rel, &repo.dir.join(&rel))?;
    }
    let file = writer
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

fn add(writer: &mut BundleWriter<BufWriter<File>>, name: &str, path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    writer.add(name, len, file)?;
    Ok(())
}
