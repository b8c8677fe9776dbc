//! The accounts' system users, as JSON user records for nss-systemd (`/run/userdb/<name>.user`, with
//! `<uid>.user` links for lookups by number, and a group of the same name and id). The image's root and `/etc`
//! are read-only, so users cannot be added to `/etc/passwd`; the records are regenerated from the database at
//! every start (`/run` is empty after a boot) and on every change, so they survive updates and rollbacks with the
//! database. sshd then finds the account like any other user, and takes its keys from rampart-sshconfd.
//!
//! Only uids in the configured range are ever written or removed, so records someone else put in the directory
//! are left alone. Files are written to a temporary name and renamed: a reader never sees half a record.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::Error;
use crate::store::Account;

#[derive(Debug, Clone)]
pub struct UserDb {
    dir: Option<PathBuf>,
    home_root: PathBuf,
    uids: std::ops::RangeInclusive<u32>,
}

impl UserDb {
    pub fn new(dir: Option<PathBuf>, home_root: PathBuf, uid_base: u32, uid_max: u32) -> UserDb {
        UserDb {
            dir,
            home_root,
            uids: uid_base..=uid_max,
        }
    }

    /// Writes (or rewrites) the records of one account.
    pub fn write(&self, a: &Account) -> Result<(), Error> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if !self.uids.contains(&a.uid) {
            return Err(Error::Invalid(format!(
                "uid {} is outside identityd's range",
                a.uid
            )));
        }
        // Administrators get a shell for `rampartctl`; the others only what the panel offers.
        let shell = match a.role.as_str() {
            "root" | "admin" => "/bin/bash",
            _ => "/usr/sbin/nologin",
        };
        let user = json!({
            "userName": a.username,
            "uid": a.uid,
            "gid": a.uid,
            "realName": format!("Rampart {} account", a.role),
            "homeDirectory": self.home_root.join(&a.username),
            "shell": shell,
            "disposition": "regular",
        });
        let group = json!({ "groupName": a.username, "gid": a.uid });
        write_atomic(&dir.join(format!("{}.user", a.username)), &user.to_string())?;
        write_atomic(
            &dir.join(format!("{}.group", a.username)),
            &group.to_string(),
        )?;
        link_atomic(
            dir,
            &format!("{}.user", a.username),
            &format!("{}.user", a.uid),
        )?;
        link_atomic(
            dir,
            &format!("{}.group", a.username),
            &format!("{}.group", a.uid),
        )?;
        Ok(())
    }

    /// Removes the records of `name`/`uid`.
    pub fn remove(&self, name: &str, uid: u32) -> Result<(), Error> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if !self.uids.contains(&uid) {
            return Ok(());
        }
        for file in [
            format!("{name}.user"),
            format!("{name}.group"),
            format!("{uid}.user"),
            format!("{uid}.group"),
        ] {
            let path = dir.join(file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Userdb { path, source }),
            }
        }
        Ok(())
    }

    /// Makes the directory hold exactly `accounts` within identityd's uid range.
    pub fn sync(&self, accounts: &[Account]) -> Result<(), Error> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        for a in accounts {
            self.write(a)?;
        }
        let wanted: HashSet<u32> = accounts.iter().map(|a| a.uid).collect();
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Userdb {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some((uid, name)) = ours(&path) else {
                continue;
            };
            if self.uids.contains(&uid) && !wanted.contains(&uid) {
                self.remove(&name, uid)?;
            }
        }
        Ok(())
    }
}

/// (uid, name) of a `<name>.user` record file, read from the file itself.
fn ours(path: &Path) -> Option<(u32, String)> {
    if path.extension()? != "user" || path.is_symlink() {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let uid = u32::try_from(v.get("uid")?.as_u64()?).ok()?;
    Some((uid, v.get("userName")?.as_str()?.to_owned()))
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let err = |source| Error::Userdb {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, text).map_err(err)?;
    // World-readable: NSS lookups run as every user. The records hold no secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn link_atomic(dir: &Path, target: &str, link: &str) -> Result<(), Error> {
    let tmp = dir.join(format!("{link}.tmp"));
    let path = dir.join(link);
    let err = |source| Error::Userdb {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, uid: u32, role: &str) -> Account {
        Account {
            id: 1,
            username: name.into(),
            role: role.into(),
            uid,
            password_hash: String::new(),
            totp_secret: String::new(),
            totp_pending: String::new(),
            totp_last_step: 0,
            disabled: false,
            disabled_reason: String::new(),
            expires_at: 0,
            created_at: 0,
            created_by: String::new(),
            last_login: 0,
            setup_token: String::new(),
        }
    }

    #[test]
    fn writes_records_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::new(Some(dir.path().into()), "/home".into(), 10_000, 19_999);
        db.write(&account("alice", 10_001, "root")).unwrap();
        db.write(&account("bob", 10_002, "auditor")).unwrap();
        // Someone else's record (the tests' own users, a tenant daemon's) in another range.
        std::fs::write(
            dir.path().join("other.user"),
            r#"{"userName":"other","uid":60100}"#,
        )
        .unwrap();
        let alice: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("10001.user")).unwrap())
                .unwrap();
        assert_eq!(alice["userName"], "alice");
        assert_eq!(alice["shell"], "/bin/bash");
        assert_eq!(alice["homeDirectory"], "/home/alice");
        let bob = std::fs::read_to_string(dir.path().join("bob.user")).unwrap();
        assert!(bob.contains("/usr/sbin/nologin"));
        db.sync(&[account("alice", 10_001, "root")]).unwrap();
        assert!(!dir.path().join("bob.user").exists() && !dir.path().join("10002.user").exists());
        assert!(dir.path().join("alice.user").exists() && dir.path().join("other.user").exists());
        assert!(
            db.write(&account("mallory", 0, "root")).is_err(),
            "uid 0 is never written"
        );
    }
}
