//! Tenants' directories: `<root>/<name>` is the SFTP chroot — root:root 0755, as sshd's `ChrootDirectory`
//! demands of every path component — and `<root>/<name>/data` is the tenant's own (uid:gid 0700), its home and
//! what it sees as `/data` after logging in.
//!
//! Nothing here follows a symlink: a path that is not the directory this daemon made is refused, never
//! "repaired", so a tenant cannot point a later chown or removal somewhere else.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Directories {
    root: PathBuf,
    /// False only in tests that cannot run as root: owners are then left as they are.
    chown: bool,
}

impl Directories {
    pub fn new(root: PathBuf, chown: bool) -> Directories {
        Directories { root, chown }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The chroot of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The tenant's own directory (its home).
    pub fn data(&self, name: &str) -> PathBuf {
        self.path(name).join("data")
    }

    /// The directory every chroot lives in must be root's and closed to others (sshd checks every component).
    pub fn prepare_root(&self) -> Result<(), Error> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.root)
            .map_err(Error::dir("create", &self.root))?;
        self.own(&self.root, 0, 0o755)
    }

    /// Makes `<root>/<name>` and its `data`; refuses when `<root>/<name>` exists (left from something else).
    pub fn create(&self, name: &str, uid: u32) -> Result<(), Error> {
        let path = self.path(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::Foreign {
                path,
                found: "it already exists".into(),
            });
        }
        let made = self.make(name, uid);
        if made.is_err() {
            // Only what this call made: the path did not exist before.
            let _ = std::fs::remove_dir_all(&path);
        }
        made
    }

    /// Makes sure both directories exist with the right owners and modes (at start, and when a tenant comes
    /// back): a missing one is made, a wrong mode or owner on them is put right. Their contents are not looked at.
    pub fn ensure(&self, name: &str, uid: u32) -> Result<(), Error> {
        self.make(name, uid)
    }

    fn make(&self, name: &str, uid: u32) -> Result<(), Error> {
        let path = self.path(name);
        let data = self.data(name);
        for (dir, owner, mode) in [(&path, 0, 0o755), (&data, uid, 0o700)] {
            match std::fs::symlink_metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(Error::Foreign {
                        path: dir.clone(),
                        found: "not a directory".into(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                    .mode(mode)
                    .create(dir)
                    .map_err(Error::dir("create", dir))?,
                Err(e) => return Err(Error::dir("inspect", dir)(e)),
            }
            self.own(dir, owner, mode)?;
        }
        Ok(())
    }

    /// Sets `dir`'s owner (uid and gid `owner`) and mode; the directory is known not to be a symlink.
    fn own(&self, dir: &Path, owner: u32, mode: u32) -> Result<(), Error> {
        if self.chown {
            let meta = std::fs::symlink_metadata(dir).map_err(Error::dir("inspect", dir))?;
            if meta.uid() != owner || meta.gid() != owner {
                std::os::unix::fs::lchown(dir, Some(owner), Some(owner))
                    .map_err(Error::dir("change the owner of", dir))?;
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(Error::dir("set the mode of", dir))
    }

    /// Removes `<root>/<name>` and everything in it, for good. A missing directory is already gone.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let path = self.path(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                std::fs::remove_dir_all(&path).map_err(Error::dir("remove", &path))
            }
            Ok(_) => Err(Error::Foreign {
                path,
                found: "not a directory".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::dir("inspect", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn create_ensure_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Directories::new(tmp.path().join("tenants"), false);
        dirs.prepare_root().unwrap();
        dirs.create("shop", 20_000).unwrap();
        assert_eq!(mode(&dirs.path("shop")), 0o755);
        assert_eq!(mode(&dirs.data("shop")), 0o700);
        std::fs::write(dirs.data("shop").join("index.html"), "hi").unwrap();
        assert!(matches!(
            dirs.create("shop", 20_000),
            Err(Error::Foreign { .. })
        ));
        std::fs::set_permissions(dirs.path("shop"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        dirs.ensure("shop", 20_000).unwrap();
        assert_eq!(mode(&dirs.path("shop")), 0o755, "put right");
        assert!(
            dirs.data("shop").join("index.html").exists(),
            "contents kept"
        );
        dirs.remove("shop").unwrap();
        assert!(!dirs.path("shop").exists());
        dirs.remove("shop").unwrap();
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Directories::new(tmp.path().join("tenants"), false);
        dirs.prepare_root().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dirs.path("evil")).unwrap();
        assert!(matches!(
            dirs.ensure("evil", 20_000),
            Err(Error::Foreign { .. })
        ));
        assert!(matches!(dirs.remove("evil"), Err(Error::Foreign { .. })));
        dirs.create("shop", 20_000).unwrap();
        std::fs::remove_dir(dirs.data("shop")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dirs.data("shop")).unwrap();
        assert!(matches!(
            dirs.ensure("shop", 20_000),
            Err(Error::Foreign { .. })
        ));
        dirs.remove("shop").unwrap();
        assert!(elsewhere.join("keep").exists(), "never followed");
    }
}
