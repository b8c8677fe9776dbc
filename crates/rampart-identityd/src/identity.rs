//! The identity service's state and the checks every other part uses: who a token belongs to, whether its role
//! holds a permission, and the periodic work (expiring accounts, purging dead sessions).
//!
//! Logins are in [`crate::login`], account management in [`crate::accounts`], the first-boot setup in
//! [`crate::setup`]; all are `impl Identity` blocks over the same database.

use std::sync::{Mutex, MutexGuard};

use rampart_interfaces::identity::{
    role_allows, Principal, SessionInfo, ROLE_SETUP, SETUP_PENDING,
};
use rusqlite::Connection;

use crate::error::Error;
use crate::password::Hasher;
use crate::settings::Settings;
use crate::setup::CodeState;
use crate::ssh_sync::SshSync;
use crate::store::{self, Account, SessionRow, KIND_SESSION, KIND_SETUP};
use crate::throttle::{Limits, Throttle};
use crate::userdb::UserDb;

/// A session's `last_seen` is written at most this often: every authorized call would otherwise be an fsync.
/// The idle timeout is therefore exact to within this many seconds.
pub const TOUCH_EVERY_SECS: u64 = 30;

#[derive(Debug)]
pub struct Identity {
    pub(crate) db: Mutex<Connection>,
    pub(crate) settings: Settings,
    pub(crate) hasher: Hasher,
    /// Caps concurrent argon2 computations (each takes `argon2_memory_kib`).
    pub(crate) hashing: tokio::sync::Semaphore,
    pub(crate) throttle: Mutex<Throttle>,
    /// Wrong setup codes, per source.
    pub(crate) setup_throttle: Mutex<Throttle>,
    pub(crate) code: Mutex<CodeState>,
    /// One account change at a time (they span a call to sshconfd and a transaction here).
    pub(crate) changes: tokio::sync::Mutex<()>,
    pub(crate) userdb: UserDb,
    pub(crate) ssh: SshSync,
    /// This machine's name, for otpauth labels and the password policy.
    pub(crate) host: String,
}

/// Something identityd did on its own, for the audit log and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Expired { account: String },
    SessionEnded { id: String, account: String },
}

impl Identity {
    pub fn new(
        conn: Connection,
        settings: Settings,
        ssh: SshSync,
        host: String,
    ) -> Result<Identity, Error> {
        let hasher = Hasher::new(settings.argon2_memory_kib, settings.argon2_iterations, 1)?;
        let userdb = UserDb::new(
            settings.userdb_dir.clone(),
            settings.home_root.clone(),
            settings.uid_base,
            settings.uid_max,
        );
        let setup_limits = Limits {
            window_secs: 600,
            per_account: usize::MAX,
            per_source: 5,
        };
        Ok(Identity {
            db: Mutex::new(conn),
            hashing: tokio::sync::Semaphore::new(settings.concurrent_hashes),
            throttle: Mutex::new(Throttle::new(settings.throttle)),
            setup_throttle: Mutex::new(Throttle::new(setup_limits)),
            code: Mutex::new(CodeState::default()),
            changes: tokio::sync::Mutex::new(()),
            hasher,
            userdb,
            ssh,
            host,
            settings,
        })
    }

    pub(crate) fn db(&self) -> Result<MutexGuard<'_, Connection>, Error> {
        self.db
            .lock()
            .map_err(|_| Error::Task("the database lock is poisoned".into()))
    }

    pub(crate) fn lock<'a, T>(m: &'a Mutex<T>) -> Result<MutexGuard<'a, T>, Error> {
        m.lock()
            .map_err(|_| Error::Task("a lock is poisoned".into()))
    }

    /// Whether the daemon can still take its locks (the watchdog's health check).
    pub fn healthy(&self) -> bool {
        !self.db.is_poisoned() && !self.throttle.is_poisoned() && !self.code.is_poisoned()
    }

    /// Runs `work` with the password hasher on a blocking thread, at most `concurrent_hashes` at a time (each
    /// argon2 run takes its full memory cost).
    pub(crate) async fn with_hasher<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Hasher) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::Task("the hashing semaphore closed".into()))?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || work(&hasher))
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }

    /// Rewrites every account's user record (at start: `/run` is empty after a boot).
    pub fn sync_userdb(&self) -> Result<(), Error> {
        let accounts = store::all_accounts(&*self.db()?)?;
        self.userdb.sync(&accounts)
    }

    /// The live full session or setup token behind `token`, with its account (None for setup tokens).
    fn live(
        &self,
        conn: &Connection,
        token: &str,
        now: u64,
    ) -> Result<(SessionRow, Option<Account>), Error> {
        let gone =
            || Error::Denied("the session has ended or was never valid; log in again".into());
        if token.is_empty() || token.len() > 128 {
            return Err(gone());
        }
        let row = store::session(conn, &crate::secrets::digest(token))?.ok_or_else(gone)?;
        if row.expires_at <= now {
            return Err(gone());
        }
        match row.kind.as_str() {
            KIND_SESSION => {
                if row.last_seen + self.settings.session_idle.as_secs() <= now {
                    return Err(Error::Denied(
                        "the session was idle too long; log in again".into(),
                    ));
                }
                let account = row
                    .account_id
                    .map(|id| store::account_by_id(conn, id))
                    .transpose()?
                    .flatten()
                    .ok_or_else(gone)?;
                if account.locked(now) {
                    return Err(Error::Denied(format!(
                        "the account {} is disabled or expired",
                        account.username
                    )));
                }
                if now >= row.last_seen + TOUCH_EVERY_SECS {
                    store::touch_session(conn, &row.digest, now)?;
                }
                Ok((row, Some(account)))
            }
            KIND_SETUP => {
                if store::setup(conn)?.state != SETUP_PENDING {
                    return Err(Error::Denied(
                        "setup is complete; log in with the administrator's account".into(),
                    ));
                }
                Ok((row, None))
            }
            _ => Err(gone()),
        }
    }

    /// `Authorize`: the principal behind `token`, if its role holds `permission`.
    pub fn authorize(&self, token: &str, permission: &str, now: u64) -> Result<Principal, Error> {
        let conn = self.db()?;
        let (row, account) = self.live(&conn, token, now)?;
        let (name, role) = match &account {
            Some(a) => (a.username.clone(), a.role.clone()),
            None => (format!("setup:{}", row.via), ROLE_SETUP.to_owned()),
        };
        if !role_allows(&role, permission) {
            return Err(Error::Denied(format!(
                "{permission}: {name} (role {role}) does not hold this permission"
            )));
        }
        Ok(Principal {
            name,
            role,
            session_id: row.id,
        })
    }

    /// `SessionInfo`.
    pub fn session_info(&self, token: &str, now: u64) -> Result<SessionInfo, Error> {
        let conn = self.db()?;
        let (row, account) = self.live(&conn, token, now)?;
        let (username, role) = match account {
            Some(a) => (a.username, a.role),
            // A setup token stands for the administrator it proposed (empty until it proposed one).
            None => (
                store::pending_admin(&conn, &row.digest)?
                    .map(|a| a.username)
                    .unwrap_or_default(),
                ROLE_SETUP.to_owned(),
            ),
        };
        let idle = self.settings.session_idle.as_secs();
        Ok(SessionInfo {
            id: row.id,
            csrf: row.csrf,
            username,
            role,
            created_at: row.created_at,
            idle_expires_at: (now.max(row.last_seen) + idle).min(row.expires_at),
            expires_at: row.expires_at,
        })
    }

    /// Disables accounts whose expiry has come and deletes dead sessions.
    pub fn tick(&self, now: u64) -> Result<Vec<Event>, Error> {
        let mut conn = self.db()?;
        let tx = conn.transaction().map_err(Error::db("begin"))?;
        let expired = store::expire_due(&tx, now)?;
        let ended = store::purge_sessions(&tx, now, self.settings.session_idle.as_secs())?;
        tx.commit().map_err(Error::db("commit"))?;
        Ok(expired
            .into_iter()
            .map(|account| Event::Expired { account })
            .chain(
                ended
                    .into_iter()
                    .map(|(id, account)| Event::SessionEnded { id, account }),
            )
            .collect())
    }

    /// The words a password must not be built from: host, configured site names, and `extra` (the account name).
    pub(crate) fn policy_words(&self, extra: &str) -> Vec<String> {
        let mut words = vec![self.host.clone(), "rampart".to_owned(), extra.to_owned()];
        words.extend(self.settings.site_names.iter().cloned());
        words
    }
}
