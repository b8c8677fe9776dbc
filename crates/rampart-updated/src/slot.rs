//! The two root slots (A/B) as types: which one runs, which one the update writes, and where its device is.
//!
//! The running slot comes from the kernel command line's `root=PARTUUID=…` (what systemd-boot's entry passed and
//! the initrd mounted), not from `/proc/mounts`: erofs on a partition shows as `/dev/root` or a dm name there,
//! and the command line is exactly what the boot entry said. The command line text is a parameter so tests need
//! no `/proc`. The device path is `/dev/disk/by-partuuid/<uuid>` under a configurable root, so tests point it
//! at a directory of regular files. Rejected: finding slots by GPT label at run time (labels are not
//! authenticated any more than PARTUUIDs, and the image fixes both; PARTUUIDs are what the entry names).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// The GPT partition label (image/partitions).
    pub fn label(self) -> &'static str {
        match self {
            Slot::A => "root-a",
            Slot::B => "root-b",
        }
    }

    /// The slot an update writes while this one runs.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A GPT partition UUID, lowercase `8-4-4-4-12` hex (the form udev's by-partuuid links and the kernel use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartUuid(String);

impl PartUuid {
    pub fn parse(text: &str) -> Result<PartUuid, Error> {
        let bad = |reason| Error::Invalid {
            what: "PARTUUID",
            value: text.to_owned(),
            reason,
        };
        let lower = text.to_ascii_lowercase();
        if lower.len() != 36 {
            return Err(bad("not 36 characters (8-4-4-4-12 hex)"));
        }
        for (i, c) in lower.chars().enumerate() {
            let dash = matches!(i, 8 | 13 | 18 | 23);
            if dash != (c == '-') || (!dash && !c.is_ascii_hexdigit()) {
                return Err(bad("not 8-4-4-4-12 hex"));
            }
        }
        Ok(PartUuid(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PartUuid {
    type Error = Error;
    fn try_from(s: String) -> Result<PartUuid, Error> {
        PartUuid::parse(&s)
    }
}

impl From<PartUuid> for String {
    fn from(u: PartUuid) -> String {
        u.0
    }
}

impl fmt::Display for PartUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fixed PARTUUIDs of image/partitions.
pub const IMAGE_ROOT_A: &str = "817a5b33-81ac-4807-8c2c-5577dd010395";
pub const IMAGE_ROOT_B: &str = "dce24fa8-a9b0-49e1-bbcb-2af0adffb44d";
pub const BY_PARTUUID: &str = "/dev/disk/by-partuuid";

/// Both slots' PARTUUIDs and where their device nodes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots {
    a: PartUuid,
    b: PartUuid,
    dev_dir: PathBuf,
}

impl Slots {
    pub fn new(a: PartUuid, b: PartUuid, dev_dir: impl Into<PathBuf>) -> Result<Slots, Error> {
        if a == b {
            return Err(Error::Invalid {
                what: "slot PARTUUIDs",
                value: a.0,
                reason: "root-a and root-b are the same partition",
            });
        }
        Ok(Slots {
            a,
            b,
            dev_dir: dev_dir.into(),
        })
    }

    /// The image's layout on a real machine.
    pub fn image() -> Slots {
        Slots {
            a: PartUuid(IMAGE_ROOT_A.into()),
            b: PartUuid(IMAGE_ROOT_B.into()),
            dev_dir: BY_PARTUUID.into(),
        }
    }

    /// The same PARTUUIDs with device nodes under another directory (tests: regular files there).
    pub fn with_dev_dir(mut self, dir: &Path) -> Slots {
        self.dev_dir = dir.into();
        self
    }

    pub fn uuid(&self, slot: Slot) -> &PartUuid {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }

    /// `<dev_dir>/<partuuid>`, e.g. `/dev/disk/by-partuuid/dce24fa8-…`.
    pub fn device(&self, slot: Slot) -> PathBuf {
        self.dev_dir.join(self.uuid(slot).as_str())
    }

    pub fn slot_of(&self, uuid: &PartUuid) -> Option<Slot> {
        [Slot::A, Slot::B]
            .into_iter()
            .find(|s| self.uuid(*s) == uuid)
    }

    /// The running slot, from the kernel command line (`/proc/cmdline`'s text). The last `root=` wins, as in the
    /// kernel; a `root=` that is not `PARTUUID=` of one of the slots is an error, never a guess.
    pub fn booted(&self, cmdline: &str) -> Result<Slot, Error> {
        let root = cmdline
            .split_ascii_whitespace()
            .filter_map(|word| word.strip_prefix("root="))
            .next_back()
            .ok_or(Error::NoRootOnCmdline)?;
        let uuid = root
            .strip_prefix("PARTUUID=")
            .ok_or_else(|| Error::UnknownRoot(root.to_owned()))?;
        let uuid = PartUuid::parse(uuid).map_err(|_| Error::UnknownRoot(root.to_owned()))?;
        self.slot_of(&uuid)
            .ok_or_else(|| Error::UnknownRoot(uuid.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDLINE: &str = "initrd=\\EFI\\rampart\\0.1.0\\initrd.img root=PARTUUID=817A5B33-81ac-4807-8c2c-5577dd010395 rootfstype=erofs ro console=tty0 console=ttyS0,115200 panic=10";

    #[test]
    fn booted_and_inactive_slot_from_the_cmdline() {
        let slots = Slots::image();
        assert_eq!(slots.booted(CMDLINE).unwrap(), Slot::A);
        assert_eq!(slots.booted(CMDLINE).unwrap().other(), Slot::B);
        let b = format!("root=PARTUUID={IMAGE_ROOT_A} quiet root=PARTUUID={IMAGE_ROOT_B}");
        assert_eq!(slots.booted(&b).unwrap(), Slot::B);
        assert_eq!(
            slots.device(Slot::B),
            PathBuf::from(format!("/dev/disk/by-partuuid/{IMAGE_ROOT_B}"))
        );
        assert_eq!(Slot::B.label(), "root-b");
    }

    #[test]
    fn unknown_or_missing_roots_are_errors() {
        let slots = Slots::image();
        assert!(matches!(
            slots.booted("ro quiet"),
            Err(Error::NoRootOnCmdline)
        ));
        assert!(matches!(
            slots.booted("root=/dev/sda2"),
            Err(Error::UnknownRoot(_))
        ));
        assert!(matches!(
            slots.booted("root=PARTUUID=96405028-b1db-4308-b0a4-2b809b6d2999"),
            Err(Error::UnknownRoot(_))
        ));
        assert!(matches!(
            slots.booted("root=PARTUUID=../../etc/passwd"),
            Err(Error::UnknownRoot(_))
        ));
        assert!(PartUuid::parse("817a5b33-81ac-4807-8c2c-5577dd01039").is_err());
        assert!(PartUuid::parse("817a5b33x81ac-4807-8c2c-5577dd010395").is_err());
        let a = PartUuid::parse(IMAGE_ROOT_A).unwrap();
        assert!(Slots::new(a.clone(), a, "/dev").is_err());
    }
}
