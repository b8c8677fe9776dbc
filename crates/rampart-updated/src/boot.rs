//! The ESP side: kernel and initrd per version under `/EFI/rampart/<version>/`, and BLS Type 1 entries
//! `loader/entries/rampart-<version>+3.conf` with systemd-boot's boot counting.
//!
//! How the new entry becomes the default, without touching EFI variables: the image's `loader.conf` says
//! `default rampart-*`, and systemd-boot picks the *first* entry matching that pattern in its sort order. That
//! order puts entries with no tries left (`+0-N`) last, then orders entries that share a `sort-key` by
//! `version` newest first (systemd's `boot_entry_compare`/`config_entry_compare` in src/boot/boot.c, with
//! `strverscmp_improved`; `config_default_entry_select` does the pattern match). So a new, higher version with
//! `+3` is booted next; each boot attempt renames it `+2-1`, `+1-2`, `+0-3`; at `+0-3` it sorts last and the old
//! (blessed, counter-less) entry wins again: the fallback needs nothing from us. After a good boot,
//! `systemd-bless-boot.service` (after `boot-complete.target`) renames the file to drop the counter.
//! Rejected: `LoaderEntryOneShot` (covers a single boot, so a second attempt would go back to the pattern anyway,
//! and it needs efivarfs writes from a sandboxed daemon) and `LoaderEntryDefault` (pins an entry by name, which
//! changes at every counted boot, and would defeat the sort-last fallback if it kept matching).
//!
//! Two consequences: an update must carry a higher version than the running one (the engine refuses the running
//! version; `check_installable` refuses older ones), and the `version` line must sort like semver. It does for
//! `X.Y.Z`; for pre-releases the entry writes `1.0.0~rc.1` (in `strverscmp_improved` `~` sorts before
//! everything, even the end, so `1.0.0~rc.1 < 1.0.0` as in semver, where a `-` would sort *after* `1.0.0`).
//! Mixed numeric/alphanumeric pre-release identifiers may still order differently from semver; releases should
//! not depend on that.
//!
//! Every file is written to a temp name (a leading dot: systemd-boot ignores those, and anything not `*.conf`),
//! fsynced, renamed, and the directory fsynced; the entry is written last (the engine's phases enforce it).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rampart_update::digest::TargetReader;
use semver::Version;

use crate::error::io;
use crate::slot::PartUuid;
use crate::state::{sync_dir, temp_path, write_atomic};
use crate::Error;

pub const ENTRY_PREFIX: &str = "rampart-";
/// Boot attempts a new entry gets by default (`boot_tries` in updated.d).
pub const TRIES: u32 = 3;
pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRD_FILE: &str = "initrd.img";
const MAX_ENTRY_LEN: u64 = 64 * 1024;

/// systemd-boot's counter in an entry's file name: `+LEFT` or `+LEFT-DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub left: u32,
    pub done: u32,
}

/// A Rampart entry file name: `rampart-<version>[+LEFT[-DONE]].conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    pub file: String,
    pub version: Version,
    /// None once blessed.
    pub counter: Option<Counter>,
}

impl EntryName {
    pub fn parse(file: &str) -> Option<EntryName> {
        let stem = file.strip_prefix(ENTRY_PREFIX)?.strip_suffix(".conf")?;
        let (version, counter) = match stem.rsplit_once('+') {
            Some((v, c)) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
                    None => (c.parse().ok()?, 0),
                };
                (v, Some(Counter { left, done }))
            }
            None => (stem, None),
        };
        Some(EntryName {
            file: file.to_owned(),
            version: Version::parse(version).ok()?,
            counter,
        })
    }

    /// No tries left: systemd-boot sorts it last and will not pick it again.
    pub fn exhausted(&self) -> bool {
        self.counter.is_some_and(|c| c.left == 0)
    }

    pub fn blessed(&self) -> bool {
        self.counter.is_none()
    }
}

/// The file name of a new entry: `rampart-<version>+<tries>.conf`.
pub fn new_entry_file(version: &Version, tries: u32) -> String {
    format!("{ENTRY_PREFIX}{version}+{tries}.conf")
}

/// The `version` line: semver with the pre-release separator as `~` so systemd-boot orders it like semver.
pub fn boot_version(version: &Version) -> String {
    let text = version.to_string();
    match text.split_once('-') {
        Some((core, pre)) => format!("{core}~{pre}"),
        None => text,
    }
}

/// The new entry's kernel options: the current ones with `root=` pointing at the new slot (and `ro` kept).
pub fn entry_options(new_root: &PartUuid, current: &str) -> Result<String, Error> {
    if current.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid {
            what: "kernel options",
            value: current.to_owned(),
            reason: "control characters (a newline would add lines to the entry)",
        });
    }
    let mut words = vec![format!("root=PARTUUID={new_root}")];
    words.extend(
        current
            .split_ascii_whitespace()
            .filter(|w| !w.starts_with("root="))
            .map(str::to_owned),
    );
    if !words.iter().any(|w| w == "ro") {
        words.insert(1, "ro".into());
    }
    Ok(words.join(" "))
}

pub fn entry_text(version: &Version, options: &str) -> String {
    format!(
        "title Rampart {version}\nversion {}\nsort-key rampart\nlinux /EFI/rampart/{version}/{KERNEL_FILE}\n\
         initrd /EFI/rampart/{version}/{INITRD_FILE}\noptions {options}\n",
        boot_version(version)
    )
}

/// The ESP, mounted at a configurable root (`/efi` on the machine, a tempdir in tests).
#[derive(Debug, Clone)]
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn new(root: impl Into<PathBuf>) -> Esp {
        Esp { root: root.into() }
    }

    pub fn entries_dir(&self) -> PathBuf {
        self.root.join("loader/entries")
    }

    pub fn version_dir(&self, version: &Version) -> PathBuf {
        self.root.join("EFI/rampart").join(version.to_string())
    }

    /// Rampart's entries (other files are not ours and are left alone), sorted by file name.
    pub fn entries(&self) -> Result<Vec<EntryName>, Error> {
        let dir = self.entries_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io("list", &dir))?;
            if let Some(name) = e.file_name().to_str().and_then(EntryName::parse) {
                out.push(name);
            }
        }
        out.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(out)
    }

    /// The `options` of an entry (several lines are joined, as systemd-boot does).
    pub fn options_of(&self, entry: &EntryName) -> Result<String, Error> {
        let path = self.entries_dir().join(&entry.file);
        // Entries are a few hundred bytes; a bigger file is not one of ours.
        let mut text = String::new();
        File::open(&path)
            .and_then(|f| f.take(MAX_ENTRY_LEN + 1).read_to_string(&mut text))
            .map_err(io("read", &path))?;
        if text.len() as u64 > MAX_ENTRY_LEN {
            return Err(Error::Entry {
                name: entry.file.clone(),
                reason: format!("longer than {MAX_ENTRY_LEN} bytes"),
            });
        }
        let opts: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("options"))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map(str::trim)
            .collect();
        Ok(opts.join(" "))
    }

    /// Streams a target into `/EFI/rampart/<version>/<file>` through its digest check; renamed into place only
    /// if length and digests match.
    pub fn write_boot_file<R: Read>(
        &self,
        version: &Version,
        file: &str,
        mut target: TargetReader<R>,
    ) -> Result<(), Error> {
        let dir = self.version_dir(version);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join(file);
        let tmp = temp_path(&path);
        let written = (|| {
            let mut out = File::create(&tmp).map_err(io("create", &tmp))?;
            std::io::copy(&mut target, &mut out).map_err(|source| Error::Source {
                what: file.to_owned(),
                source,
            })?;
            target.finish()?;
            out.flush()
                .and_then(|()| out.sync_all())
                .map_err(io("write", &tmp))
        })();
        if written.is_err() {
            // A refused or torn file never stays on the (small) ESP.
            let _ = fs::remove_file(&tmp);
        }
        written?;
        fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
        sync_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Writes `rampart-<version>+<tries>.conf` (replacing any other entry of that version) and returns its name.
    pub fn write_entry(
        &self,
        version: &Version,
        options: &str,
        tries: u32,
    ) -> Result<String, Error> {
        let dir = self.entries_dir();
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let name = new_entry_file(version, tries);
        for old in self.entries()? {
            if &old.version == version && old.file != name {
                let p = dir.join(&old.file);
                fs::remove_file(&p).map_err(io("remove", &p))?;
            }
        }
        write_atomic(&dir.join(&name), entry_text(version, options).as_bytes())?;
        Ok(name)
    }

    /// Removes every entry of `version` and its kernel directory (a failed version must not be tried again).
    /// The running version is never passed here (the engine checks).
    pub fn remove_version(&self, version: &Version) -> Result<(), Error> {
        let dir = self.entries_dir();
        for e in self.entries()? {
            if &e.version == version {
                let p = dir.join(&e.file);
                fs::remove_file(&p).map_err(io("remove", &p))?;
            }
        }
        if self.entries_dir().exists() {
            sync_dir(&dir)?;
        }
        let vdir = self.version_dir(version);
        match fs::remove_dir_all(&vdir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &vdir)(e)),
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_with_and_without_counters() {
        let e = EntryName::parse("rampart-1.2.0+3.conf").unwrap();
        assert_eq!(e.version, Version::new(1, 2, 0));
        assert_eq!(e.counter, Some(Counter { left: 3, done: 0 }));
        assert!(!e.exhausted() && !e.blessed());
        let e = EntryName::parse("rampart-1.2.0+0-3.conf").unwrap();
        assert!(e.exhausted());
        let e = EntryName::parse("rampart-1.2.0-rc.1+2-1.conf").unwrap();
        assert_eq!(e.version, Version::parse("1.2.0-rc.1").unwrap());
        assert_eq!(e.counter, Some(Counter { left: 2, done: 1 }));
        assert!(EntryName::parse("rampart-0.1.0.conf").unwrap().blessed());
        for bad in [
            "other-1.0.0.conf",
            "rampart-1.0.0+x.conf",
            "rampart-one.conf",
            "rampart-1.0.0+3.conf.tmp",
            ".rampart-1.0.0+3.conf.tmp",
        ] {
            assert!(EntryName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn options_point_at_the_new_slot() {
        let new = PartUuid::parse(crate::slot::IMAGE_ROOT_B).unwrap();
        let cur = "root=PARTUUID=817a5b33-81ac-4807-8c2c-5577dd010395 rootfstype=erofs ro console=tty0 console=ttyS0,115200 panic=10";
        assert_eq!(
            entry_options(&new, cur).unwrap(),
            format!("root=PARTUUID={new} rootfstype=erofs ro console=tty0 console=ttyS0,115200 panic=10")
        );
        assert_eq!(
            entry_options(&new, "quiet").unwrap(),
            format!("root=PARTUUID={new} ro quiet")
        );
        assert!(entry_options(&new, "quiet\ninitrd /evil").is_err());
    }

    #[test]
    fn pre_releases_sort_before_their_release_in_systemd_boot() {
        assert_eq!(
            boot_version(&Version::parse("1.0.0-rc.1").unwrap()),
            "1.0.0~rc.1"
        );
        assert_eq!(boot_version(&Version::new(1, 0, 0)), "1.0.0");
    }
}
