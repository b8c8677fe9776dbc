//! A release as the device sees it: the four targets of one version, and whether this machine may install it.

use semver::Version;

use crate::digest::TargetReader;
use crate::layout;
use crate::metadata::{kind, ReleaseInfo, TargetFile, Targets};
use crate::Error;

/// One target of a release.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub name: &'a str,
    pub file: &'a TargetFile,
}

impl Target<'_> {
    /// Where the file is in the repository (or the bundle): `targets/<sha256>.<name>`.
    pub fn repo_path(&self) -> String {
        format!(
            "{}/{}",
            layout::TARGETS_DIR,
            layout::target_file(&self.file.hashes.sha256, self.name)
        )
    }

    /// Wraps the downloaded stream: hashes as it goes, fails past the length; `finish()` checks the digests.
    pub fn reader<R: std::io::Read>(&self, inner: R) -> TargetReader<R> {
        TargetReader::new(inner, self.name, self.file.length, self.file.hashes.clone())
    }
}

/// What the device knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// This machine's variant / hardware id.
    pub variant: String,
    /// The running version.
    pub version: Version,
    /// The persisted anti-rollback floor: no release below it is ever installed again (raised by the daemon
    /// once a version is blessed, never lowered).
    pub rollback_floor: Version,
}

#[derive(Debug, Clone)]
pub struct Release<'a> {
    pub info: &'a ReleaseInfo,
    pub version: Version,
    pub min_installed_version: Version,
    /// The zstd-compressed slot image.
    pub rootfs: Target<'a>,
    pub kernel: Target<'a>,
    pub initrd: Target<'a>,
    /// The chunk index of the *uncompressed* slot image ([`crate::chunks::ChunkIndex`]).
    pub chunk_index: Target<'a>,
}

impl<'a> Release<'a> {
    /// Reads the release out of verified targets metadata: versions parse, exactly one target of each kind.
    pub fn from_targets(targets: &'a Targets) -> Result<Release<'a>, Error> {
        let info = &targets.custom;
        let version = parse_version("version", &info.version)?;
        let min_installed_version =
            parse_version("min_installed_version", &info.min_installed_version)?;
        let one = |wanted: &'static str| -> Result<Target<'a>, Error> {
            let mut found = targets
                .targets
                .iter()
                .filter(|(_, f)| f.custom.kind == wanted);
            match (found.next(), found.next()) {
                (Some((name, file)), None) => Ok(Target { name, file }),
                _ => Err(Error::ReleaseTarget {
                    kind: wanted,
                    count: targets
                        .targets
                        .values()
                        .filter(|f| f.custom.kind == wanted)
                        .count(),
                }),
            }
        };
        Ok(Release {
            info,
            version,
            min_installed_version,
            rootfs: one(kind::ROOTFS)?,
            kernel: one(kind::KERNEL)?,
            initrd: one(kind::INITRD)?,
            chunk_index: one(kind::CHUNK_INDEX)?,
        })
    }

    /// Refuses a release for another variant, older than what runs, below the anti-rollback floor, or one that
    /// cannot be installed over the running version. The same version as the running one passes (a reinstall,
    /// e.g. after the other slot was damaged); whether to do it is the daemon's choice.
    pub fn check_installable(&self, device: &Installed) -> Result<(), Error> {
        if self.info.variant != device.variant {
            return Err(Error::WrongVariant {
                release: self.info.variant.clone(),
                device: device.variant.clone(),
            });
        }
        if self.version < device.rollback_floor {
            return Err(Error::BelowRollbackFloor {
                release: self.version.to_string(),
                floor: device.rollback_floor.to_string(),
            });
        }
        if self.version < device.version {
            return Err(Error::Downgrade {
                release: self.version.to_string(),
                installed: device.version.to_string(),
            });
        }
        if device.version < self.min_installed_version {
            return Err(Error::InstalledTooOld {
                release: self.version.to_string(),
                minimum: self.min_installed_version.to_string(),
                installed: device.version.to_string(),
            });
        }
        Ok(())
    }
}

pub fn parse_version(field: &'static str, value: &str) -> Result<Version, Error> {
    Version::parse(value).map_err(|source| Error::Version {
        field,
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::{Common, TargetCustom};
    use crate::role::Role;
    use crate::utc::UtcTime;

    fn targets(version: &str, min: &str) -> Targets {
        let file = |k: &str| TargetFile {
            length: 1,
            hashes: crate::digest::hashes(b"x"),
            custom: TargetCustom { kind: k.to_owned() },
        };
        Targets {
            common: Common::new(Role::Targets, 1, UtcTime::new(std::time::UNIX_EPOCH)),
            targets: kind::ALL
                .iter()
                .map(|k| (format!("{k}.bin"), file(k)))
                .collect::<BTreeMap<_, _>>(),
            custom: ReleaseInfo {
                version: version.into(),
                min_installed_version: min.into(),
                variant: "x86_64".into(),
            },
        }
    }

    fn device(version: &str, floor: &str) -> Installed {
        Installed {
            variant: "x86_64".into(),
            version: Version::parse(version).unwrap(),
            rollback_floor: Version::parse(floor).unwrap(),
        }
    }

    #[test]
    fn installable_release_passes() {
        let t = targets("1.10.0", "1.2.0");
        let r = Release::from_targets(&t).unwrap();
        // 1.10 > 1.9: versions compare as versions, not strings.
        r.check_installable(&device("1.9.0", "1.0.0")).unwrap();
        r.check_installable(&device("1.10.0", "1.10.0")).unwrap();
    }

    #[test]
    fn wrong_variant_is_refused() {
        let t = targets("2.0.0", "1.0.0");
        let mut d = device("1.0.0", "1.0.0");
        d.variant = "arm64".into();
        assert!(matches!(
            Release::from_targets(&t).unwrap().check_installable(&d),
            Err(Error::WrongVariant { .. })
        ));
    }

    #[test]
    fn downgrade_is_refused() {
        let t = targets("1.9.0", "1.0.0");
        assert!(matches!(
            Release::from_targets(&t)
                .unwrap()
                .check_installable(&device("1.10.0", "1.0.0")),
            Err(Error::Downgrade { .. })
        ));
        // A pre-release sorts before its release.
        let t = targets("2.0.0-rc.1", "1.0.0");
        assert!(matches!(
            Release::from_targets(&t)
                .unwrap()
                .check_installable(&device("2.0.0", "1.0.0")),
            Err(Error::Downgrade { .. })
        ));
    }

    #[test]
    fn below_the_anti_rollback_floor_is_refused() {
        // Installed 1.0 (e.g. after falling back to the old slot) but 1.5 was blessed once: 1.4 stays out.
        let t = targets("1.4.0", "1.0.0");
        assert!(matches!(
            Release::from_targets(&t)
                .unwrap()
                .check_installable(&device("1.0.0", "1.5.0")),
            Err(Error::BelowRollbackFloor { .. })
        ));
    }

    #[test]
    fn too_old_installed_version_is_refused() {
        let t = targets("3.0.0", "2.0.0");
        assert!(matches!(
            Release::from_targets(&t)
                .unwrap()
                .check_installable(&device("1.9.0", "1.0.0")),
            Err(Error::InstalledTooOld { .. })
        ));
    }

    #[test]
    fn duplicate_kinds_are_refused() {
        let mut t = targets("1.0.0", "1.0.0");
        let extra = t.targets["kernel.bin"].clone();
        t.targets.insert("kernel2.bin".into(), extra);
        assert!(matches!(
            Release::from_targets(&t),
            Err(Error::ReleaseTarget {
                kind: "kernel",
                count: 2
            })
        ));
    }
}
