//! System users as JSON user records for nss-systemd (`/run/userdb`), for daemons whose users cannot go into
//! `/etc/passwd`: the image's root and `/etc` are read-only. Each user gets `<name>.user` with a `<uid>.user`
//! link for lookups by number, a group of the same name and id (`<name>.group`, `<gid>.group`), and optionally
//! memberships in other groups (`<name>:<group>.membership`). `/run` is empty after a boot, so a daemon rewrites
//! its records from its database at every start ([`Records::sync`]) and on every change.
//!
//! Each daemon owns a uid range and only ever writes or removes records inside it, so records someone else put
//! in the directory (another daemon's, a test's) are left alone. Files are written to a temporary name and
//! renamed: a reader never sees half a record.
//!
//! A membership file must not be empty: systemd treats an empty drop-in as masked and ignores it (seen with
//! systemd 252: `id` then lacks the group), so it holds `{}`.

use std::collections::HashSet;
use std::io::Write;
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::Error;

/// One user as a daemon describes it; its primary group has the same name and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub real_name: String,
    pub home: PathBuf,
    pub shell: String,
    /// Other groups it belongs to (static groups from sysusers, e.g. `rampart-tenants`).
    pub groups: Vec<String>,
}

/// The records of one daemon's uid range in one directory.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
    uids: RangeInclusive<u32>,
}

impl Records {
    pub fn new(dir: PathBuf, uids: RangeInclusive<u32>) -> Records {
        Records { dir, uids }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes (or rewrites) the records of `user`. A uid outside the range is refused.
    pub fn write(&self, user: &User) -> Result<(), Error> {
        if !self.uids.contains(&user.uid) {
            return Err(Error::UserdbRange {
                uid: user.uid,
                first: *self.uids.start(),
                last: *self.uids.end(),
            });
        }
        let (name, uid) = (&user.name, user.uid);
        let record = json!({
            "userName": name,
            "uid": uid,
            "gid": uid,
            "realName": user.real_name,
            "homeDirectory": user.home,
            "shell": user.shell,
            "disposition": "regular",
        });
        self.write_file(&format!("{name}.user"), &record.to_string())?;
        let group = json!({ "groupName": name, "gid": uid });
        self.write_file(&format!("{name}.group"), &group.to_string())?;
        self.link(&format!("{name}.user"), &format!("{uid}.user"))?;
        self.link(&format!("{name}.group"), &format!("{uid}.group"))?;
        for group in &user.groups {
            self.write_file(&format!("{name}:{group}.membership"), "{}")?;
        }
        // Memberships it no longer has.
        for (file, group) in self.memberships_of(name)? {
            if !user.groups.contains(&group) {
                self.remove_file(&file)?;
            }
        }
        Ok(())
    }

    /// Removes every record of `name`/`uid` (nothing when the uid is outside the range).
    pub fn remove(&self, name: &str, uid: u32) -> Result<(), Error> {
        if !self.uids.contains(&uid) {
            return Ok(());
        }
        for file in [
            format!("{name}.user"),
            format!("{name}.group"),
            format!("{uid}.user"),
            format!("{uid}.group"),
        ] {
            self.remove_file(&file)?;
        }
        for (file, _) in self.memberships_of(name)? {
            self.remove_file(&file)?;
        }
        Ok(())
    }

    /// Makes the directory hold exactly `users` within the range: writes each, removes the others.
    pub fn sync(&self, users: &[User]) -> Result<(), Error> {
        for user in users {
            self.write(user)?;
        }
        let wanted: HashSet<u32> = users.iter().map(|u| u.uid).collect();
        for (uid, name) in self.in_range()? {
            if !wanted.contains(&uid) {
                self.remove(&name, uid)?;
            }
        }
        Ok(())
    }

    /// (uid, name) of every user record file in the range, read from the files themselves.
    pub fn in_range(&self) -> Result<Vec<(u32, String)>, Error> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "user") && !path.is_symlink() {
                if let Some((uid, name)) = read_user(&path) {
                    if self.uids.contains(&uid) {
                        out.push((uid, name));
                    }
                }
            }
        }
        Ok(out)
    }

    fn entries(&self) -> Result<Vec<std::fs::DirEntry>, Error> {
        let err = |source| Error::Userdb {
            path: self.dir.clone(),
            source,
        };
        std::fs::read_dir(&self.dir)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    /// (file name, group) of `name`'s membership files.
    fn memberships_of(&self, name: &str) -> Result<Vec<(String, String)>, Error> {
        let prefix = format!("{name}:");
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|file| {
                let group = file.strip_prefix(&prefix)?.strip_suffix(".membership")?;
                let group = group.to_owned();
                Some((file, group))
            })
            .collect())
    }

    fn write_file(&self, file: &str, text: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        let tmp = self.dir.join(format!(".{file}.tmp"));
        let err = |source| Error::Userdb {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        // World-readable: NSS lookups run as every user. The records hold no secret.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err)
    }

    fn link(&self, target: &str, link: &str) -> Result<(), Error> {
        let path = self.dir.join(link);
        let tmp = self.dir.join(format!(".{link}.tmp"));
        let err = |source| Error::Userdb {
            path: path.clone(),
            source,
        };
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    fn remove_file(&self, file: &str) -> Result<(), Error> {
        let path = self.dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Userdb { path, source }),
        }
    }
}

fn read_user(path: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let uid = u32::try_from(v.get("uid")?.as_u64()?).ok()?;
    Some((uid, v.get("userName")?.as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid,
            real_name: "test".into(),
            home: PathBuf::from("/home").join(name),
            shell: "/usr/sbin/nologin".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn json(dir: &Path, file: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
    }

    #[test]
    fn writes_records_links_and_memberships_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().into(), 20_000..=29_999);
        records
            .write(&user("shop", 20_000, &["rampart-tenants"]))
            .unwrap();
        records.write(&user("blog", 20_001, &[])).unwrap();
        std::fs::write(
            dir.path().join("admin.user"),
            r#"{"userName":"admin","uid":10001}"#,
        )
        .unwrap();
        assert_eq!(json(dir.path(), "20000.user")["userName"], "shop");
        assert_eq!(json(dir.path(), "shop.group")["gid"], 20_000);
        let membership = dir.path().join("shop:rampart-tenants.membership");
        assert_eq!(std::fs::read_to_string(&membership).unwrap(), "{}");
        let mode = std::fs::metadata(dir.path().join("shop.user"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);

        records.write(&user("shop", 20_000, &[])).unwrap();
        assert!(!membership.exists(), "a dropped membership is removed");

        records.sync(&[user("shop", 20_000, &["x"])]).unwrap();
        for gone in ["blog.user", "blog.group", "20001.user", "20001.group"] {
            assert!(!dir.path().join(gone).exists(), "{gone}");
        }
        assert!(dir.path().join("admin.user").exists(), "outside the range");
        records.remove("shop", 20_000).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["admin.user"]);
        assert!(matches!(
            records.write(&user("root", 0, &[])),
            Err(Error::UserdbRange { uid: 0, .. })
        ));
    }
}
