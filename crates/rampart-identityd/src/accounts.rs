//! Managing accounts: create (with an optional expiry), disable, expire, reset 2FA, end sessions.
//!
//! Changes that touch SSH access (create, disable, expiry) are applied to rampart-sshconfd first and committed
//! here only when it accepted, so the two never disagree about whether an account may log in; one change at a time
//! (`changes`), so two administrators cannot interleave those two steps.

use rampart_interfaces::identity::{AccountInfo, ACCOUNT_ROLES, ROLE_ROOT};

use crate::error::Error;
use crate::identity::Identity;
use crate::secrets;
use crate::store::{self, Account, NewAccount};

/// Names no account may take: they are, or look like, the system's own users.
const RESERVED: &[&str] = &["root", "admin-rampart", "nobody", "daemon", "sshd", "setup"];

impl Identity {
    pub fn accounts(&self) -> Result<Vec<AccountInfo>, Error> {
        store::account_infos(&*self.db()?)
    }

    /// The real (not proposed) account `name`.
    pub(crate) fn account(&self, name: &str) -> Result<Account, Error> {
        store::account_by_name(&*self.db()?, name)?
            .filter(|a| a.setup_token.is_empty())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no account is named {name:?}; `rampartctl account list` lists them"
                ))
            })
    }

    /// The bus view of account `name` (two statements: the account lookup takes the database lock itself).
    fn info_of(&self, name: &str) -> Result<AccountInfo, Error> {
        let a = self.account(name)?;
        store::info(&*self.db()?, &a)
    }

    /// Checks a new account's name: well-formed, not reserved, not a system user.
    pub(crate) fn check_new_name(&self, name: &str) -> Result<(), Error> {
        rampart_interfaces::user_name::check(name).map_err(Error::Invalid)?;
        if RESERVED.contains(&name) || name.starts_with("rampart") || name.starts_with("systemd") {
            return Err(Error::Invalid(format!(
                "{name:?} is reserved for the system; choose another name"
            )));
        }
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            let uid = user.uid.as_raw();
            if !(self.settings.uid_base..=self.settings.uid_max).contains(&uid) {
                return Err(Error::Invalid(format!(
                    "{name:?} is already a system user (uid {uid}); choose another name"
                )));
            }
        }
        Ok(())
    }

    pub(crate) async fn hash_password(&self, password: &str) -> Result<String, Error> {
        let pw = password.to_owned();
        self.with_hasher(move |h| h.hash(&pw)).await?
    }

    pub async fn create_account(
        &self,
        by: &str,
        username: &str,
        role: &str,
        password: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<AccountInfo, Error> {
        self.check_new_name(username)?;
        if !ACCOUNT_ROLES.contains(&role) {
            return Err(Error::Invalid(format!(
                "role {role:?} is not one of {}",
                ACCOUNT_ROLES.join(", ")
            )));
        }
        if expires_at != 0 && expires_at <= now {
            return Err(Error::Invalid(format!(
                "expires_at {expires_at} is in the past; use 0 for no expiry"
            )));
        }
        crate::password::check_policy(password, &self.policy_words(username))
            .map_err(Error::Invalid)?;
        let hash = self.hash_password(password).await?;
        let _one = self.changes.lock().await;
        if store::account_by_name(&*self.db()?, username)?.is_some() {
            return Err(Error::Invalid(format!(
                "an account named {username:?} already exists"
            )));
        }
        self.ssh.set_account(username, true, expires_at).await?;
        let account = {
            let mut conn = self.db()?;
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            let a = store::insert_account(
                &tx,
                &NewAccount {
                    username,
                    role,
                    password_hash: &hash,
                    expires_at,
                    created_at: now,
                    created_by: by,
                    setup_token: "",
                    totp_pending: "",
                },
                self.settings.uid_base,
                self.settings.uid_max,
            )?;
            tx.commit().map_err(Error::db("commit"))?;
            a
        };
        self.userdb.write(&account)?;
        store::info(&*self.db()?, &account)
    }

    /// Refuses to leave the machine without an enabled root account (nobody could manage root accounts again).
    fn keep_a_root(&self, target: &Account, now: u64) -> Result<(), Error> {
        if target.role != ROLE_ROOT {
            return Ok(());
        }
        let others = store::all_accounts(&*self.db()?)?
            .into_iter()
            .filter(|a| {
                a.setup_token.is_empty()
                    && a.role == ROLE_ROOT
                    && a.id != target.id
                    && !a.locked(now)
            })
            .count();
        if others == 0 {
            return Err(Error::Refused(format!(
                "{} is the last enabled root account; create or enable another one first",
                target.username
            )));
        }
        Ok(())
    }

    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        by: &str,
        now: u64,
    ) -> Result<AccountInfo, Error> {
        let _one = self.changes.lock().await;
        let a = self.account(name)?;
        if disabled {
            self.keep_a_root(&a, now)?;
        } else if a.expires_at != 0 && a.expires_at <= now {
            return Err(Error::Refused(format!(
                "{name} expired; set a new expiry (or none) before enabling it again"
            )));
        }
        self.ssh.set_account(name, !disabled, a.expires_at).await?;
        {
            let mut conn = self.db()?;
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            store::set_disabled(&tx, a.id, disabled, &format!("by {by}"))?;
            if disabled {
                store::delete_sessions_of(&tx, a.id, "")?;
            }
            tx.commit().map_err(Error::db("commit"))?;
        }
        self.info_of(name)
    }

    pub async fn set_expiry(
        &self,
        name: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<AccountInfo, Error> {
        if expires_at != 0 && expires_at <= now {
            return Err(Error::Invalid(format!(
                "expires_at {expires_at} is in the past; use 0 for no expiry"
            )));
        }
        let _one = self.changes.lock().await;
        let a = self.account(name)?;
        self.ssh.set_account(name, !a.disabled, expires_at).await?;
        store::set_expiry(&*self.db()?, a.id, expires_at)?;
        self.info_of(name)
    }

    /// Forgets the account's TOTP seed and recovery codes and ends its sessions: it enrols at its next login.
    pub fn reset_second_factor(&self, name: &str) -> Result<AccountInfo, Error> {
        let a = self.account(name)?;
        {
            let mut conn = self.db()?;
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            store::reset_totp(&tx, a.id)?;
            store::delete_sessions_of(&tx, a.id, "")?;
            tx.commit().map_err(Error::db("commit"))?;
        }
        self.info_of(name)
    }

    /// Console recovery: spends one of the account's recovery codes, then resets its second factor.
    pub fn recover_second_factor(
        &self,
        name: &str,
        code: &str,
        now: u64,
    ) -> Result<AccountInfo, Error> {
        let a = self.account(name)?;
        let digest = secrets::digest(&secrets::normalize_code(code));
        if !store::use_recovery_code(&*self.db()?, a.id, &digest, now)? {
            return Err(Error::Denied(format!(
                "that is not an unused recovery code of {name}"
            )));
        }
        self.reset_second_factor(name)
    }

    /// Ends every session of `name`; returns how many.
    pub fn revoke_sessions(&self, name: &str) -> Result<u32, Error> {
        let a = self.account(name)?;
        store::delete_sessions_of(&*self.db()?, a.id, "")
    }
}
