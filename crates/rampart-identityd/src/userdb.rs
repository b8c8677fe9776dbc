//! The accounts' system users, as JSON user records for nss-systemd (`/run/userdb/<name>.user`, with
//! `<uid>.user` links for lookups by number, and a group of the same name and id). The image's root and `/etc`
//! are read-only, so users cannot be added to `/etc/passwd`; the records are regenerated from the database at
//! every start (`/run` is empty after a boot) and on every change, so they survive updates and rollbacks with the
//! database. sshd then finds the account like any other user, and takes its keys from rampart-sshconfd.
//!
//! Only uids in the configured range are ever written or removed, so records someone else put in the directory
//! (rampart-tenantd's tenants) are left alone; the files themselves are written by rampart_common::userdb.

use std::path::PathBuf;

use rampart_common::userdb::{Records, User};

use crate::error::Error;
use crate::store::Account;

#[derive(Debug, Clone)]
pub struct UserDb {
    records: Option<Records>,
    home_root: PathBuf,
}

impl UserDb {
    pub fn new(dir: Option<PathBuf>, home_root: PathBuf, uid_base: u32, uid_max: u32) -> UserDb {
        UserDb {
            records: dir.map(|d| Records::new(d, uid_base..=uid_max)),
            home_root,
        }
    }

    fn user(&self, a: &Account) -> User {
        // Administrators get a shell for `rampartctl`; the others only what the panel offers.
        let shell = match a.role.as_str() {
            "root" | "admin" => "/bin/bash",
            _ => "/usr/sbin/nologin",
        };
        User {
            name: a.username.clone(),
            uid: a.uid,
            real_name: format!("Rampart {} account", a.role),
            home: self.home_root.join(&a.username),
            shell: shell.to_owned(),
            groups: Vec::new(),
        }
    }

    /// Writes (or rewrites) the records of one account.
    pub fn write(&self, a: &Account) -> Result<(), Error> {
        let Some(records) = &self.records else {
            return Ok(());
        };
        Ok(records.write(&self.user(a))?)
    }

    /// Removes the records of `name`/`uid`.
    pub fn remove(&self, name: &str, uid: u32) -> Result<(), Error> {
        let Some(records) = &self.records else {
            return Ok(());
        };
        Ok(records.remove(name, uid)?)
    }

    /// Makes the directory hold exactly `accounts` within identityd's uid range.
    pub fn sync(&self, accounts: &[Account]) -> Result<(), Error> {
        let Some(records) = &self.records else {
            return Ok(());
        };
        let users: Vec<User> = accounts.iter().map(|a| self.user(a)).collect();
        Ok(records.sync(&users)?)
    }
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
