//! What one update installs, copied out of verified targets metadata into the journal, so that a resumed apply
//! (after a crash or reboot) checks every byte against the same signed lengths and digests without walking the
//! metadata again.

use rampart_update::digest::TargetReader;
use rampart_update::layout;
use rampart_update::metadata::TargetFile;
use rampart_update::release::{Release, Target};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::slot::Slot;
use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTarget {
    pub name: String,
    pub file: TargetFile,
}

impl PlanTarget {
    fn from_target(t: &Target<'_>) -> PlanTarget {
        PlanTarget {
            name: t.name.to_owned(),
            file: t.file.clone(),
        }
    }

    /// `targets/<sha256>.<name>` in the repository or bundle.
    pub fn repo_path(&self) -> String {
        format!(
            "{}/{}",
            layout::TARGETS_DIR,
            layout::target_file(&self.file.hashes.sha256, &self.name)
        )
    }

    pub fn reader<R: std::io::Read>(&self, inner: R) -> TargetReader<R> {
        TargetReader::new(
            inner,
            self.name.clone(),
            self.file.length,
            self.file.hashes.clone(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub version: Version,
    /// The inactive slot it is written to.
    pub slot: Slot,
    pub rootfs: PlanTarget,
    pub kernel: PlanTarget,
    pub initrd: PlanTarget,
    pub chunk_index: PlanTarget,
}

impl Plan {
    /// A plan for `release` into `slot`. Build metadata (`1.2.0+abc`) is refused: `+` starts systemd-boot's
    /// boot counter in an entry's file name, so such a version could not be told apart from its counter.
    pub fn new(release: &Release<'_>, slot: Slot) -> Result<Plan, Error> {
        check_version(&release.version)?;
        Ok(Plan {
            version: release.version.clone(),
            slot,
            rootfs: PlanTarget::from_target(&release.rootfs),
            kernel: PlanTarget::from_target(&release.kernel),
            initrd: PlanTarget::from_target(&release.initrd),
            chunk_index: PlanTarget::from_target(&release.chunk_index),
        })
    }
}

pub fn check_version(version: &Version) -> Result<(), Error> {
    if !version.build.is_empty() {
        return Err(Error::Invalid {
            what: "release version",
            value: version.to_string(),
            reason: "build metadata (+…) clashes with the boot counter in entry names",
        });
    }
    Ok(())
}
