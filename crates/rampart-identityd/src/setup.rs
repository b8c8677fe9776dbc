//! The first-boot setup, as identityd sees it: nobody can log in until it is complete, and it completes only in a
//! secure state.
//!
//! - **Setup code** ([`CodeState`]): 12 characters from a look-alike-free alphabet (≈ 59 bits), kept in memory
//!   only — a new one at every start of identityd, after 30 minutes, after it was used, and after 20 wrong tries
//!   (wrong tries are also throttled per source: 5 per 10 minutes). Only root (the console) may read it.
//! - **Setup tokens**: one per wizard run, role `setup`: may propose the administrator, add an SSH key and
//!   move SSH, nothing else. Each token proposes at most one administrator (a second proposal replaces the
//!   first); proposals are accounts marked with the token's digest that cannot log in.
//! - **Finish**: the proposal must have a confirmed TOTP seed, rampart-sshconfd must hold a key for it and have
//!   moved SSH to its own port with a login proven there. Then, in one transaction, the proposal becomes the
//!   root account, the other proposals go, and every setup token dies: the other wizard's next step is refused.

use rampart_interfaces::identity::{
    Enrolment, SetupCode, SetupInfo, ROLE_ROOT, SETUP_COMPLETE, SETUP_PENDING,
};

use crate::error::Error;
use crate::identity::Identity;
use crate::login::RECOVERY_CODES;
use crate::secrets;
use crate::store::{self, Account, NewAccount, SessionRow, KIND_SETUP};
use crate::totp;

/// Wrong codes after which the code is replaced.
const CODE_TRIES: u32 = 20;
/// Characters in a setup code (3 groups of 4).
const CODE_GROUPS: usize = 3;

/// The current setup code (memory only).
#[derive(Debug, Default)]
pub struct CodeState {
    /// As shown, with dashes; empty until first made.
    shown: String,
    expires_at: u64,
    generation: u64,
    wrong: u32,
}

impl CodeState {
    fn renew(&mut self, now: u64, lifetime: u64) {
        self.shown = secrets::code(CODE_GROUPS);
        self.expires_at = now + lifetime;
        self.generation += 1;
        self.wrong = 0;
    }

    fn current(&mut self, now: u64, lifetime: u64) -> SetupCode {
        if self.shown.is_empty() || now >= self.expires_at || self.wrong >= CODE_TRIES {
            self.renew(now, lifetime);
        }
        SetupCode {
            code: self.shown.clone(),
            expires_at: self.expires_at,
            generation: self.generation,
        }
    }
}

/// Who finished the setup, for the signal and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub info: SetupInfo,
    pub removed: Vec<String>,
}

impl Identity {
    pub fn setup_info(&self) -> Result<SetupInfo, Error> {
        let row = store::setup(&*self.db()?)?;
        let generation = Self::lock(&self.code)?.generation;
        Ok(SetupInfo {
            state: row.state,
            completed_via: row.completed_via,
            completed_at: row.completed_at,
            admin: row.admin,
            code_generation: generation,
        })
    }

    fn require_pending(&self) -> Result<(), Error> {
        if store::setup(&*self.db()?)?.state == SETUP_COMPLETE {
            return Err(Error::Refused(
                "setup is already complete; log in with the administrator's account".into(),
            ));
        }
        Ok(())
    }

    /// `SetupCode` (the caller was checked to be root).
    pub fn setup_code(&self, now: u64) -> Result<SetupCode, Error> {
        self.require_pending()?;
        Ok(Self::lock(&self.code)?.current(now, self.settings.setup_code.as_secs()))
    }

    fn new_setup_token(&self, via: &str, source: &str, now: u64) -> Result<String, Error> {
        let token = secrets::token();
        store::insert_session(
            &*self.db()?,
            &SessionRow {
                digest: secrets::digest(&token),
                id: secrets::id(),
                kind: KIND_SETUP.into(),
                account_id: None,
                via: via.into(),
                csrf: secrets::token(),
                source: source.into(),
                created_at: now,
                last_seen: now,
                expires_at: now + self.settings.setup_token.as_secs(),
                failures: 0,
            },
        )?;
        Ok(token)
    }

    /// `SetupBegin`: spends the code, returns a setup token for the web wizard.
    pub fn setup_begin(&self, typed: &str, source: &str, now: u64) -> Result<String, Error> {
        self.require_pending()?;
        if let Err(wait) = Self::lock(&self.setup_throttle)?.check("", source, now) {
            return Err(Error::Denied(format!(
                "too many wrong setup codes from this address; try again in {} s",
                wait.0
            )));
        }
        let lifetime = self.settings.setup_code.as_secs();
        {
            let mut code = Self::lock(&self.code)?;
            let current = code.current(now, lifetime);
            let typed = secrets::normalize_code(typed);
            if typed.len() > 64 || !secrets::same(&typed, &secrets::normalize_code(&current.code)) {
                code.wrong += 1;
                Self::lock(&self.setup_throttle)?.failed("", source, now);
                return Err(Error::Denied(
                    "wrong or expired setup code; read the current one on the machine's console"
                        .into(),
                ));
            }
            // Single use: the console shows a new one from now on.
            code.renew(now, lifetime);
        }
        self.new_setup_token("web", source, now)
    }

    /// `SetupBeginConsole` (the caller was checked to be root).
    pub fn setup_begin_console(&self, now: u64) -> Result<String, Error> {
        self.require_pending()?;
        self.new_setup_token("console", "", now)
    }

    /// The setup token's row; refused when it is not a live setup token.
    fn setup_row(&self, token: &str, now: u64) -> Result<SessionRow, Error> {
        self.require_pending()?;
        store::session(&*self.db()?, &secrets::digest(token))?
            .filter(|r| r.kind == KIND_SETUP && r.expires_at > now)
            .ok_or_else(|| {
                Error::Denied("this setup session has ended; start the wizard again".into())
            })
    }

    /// `SetupAdmin`: (re)proposes this wizard's administrator; returns the TOTP seed to enrol.
    pub async fn setup_admin(
        &self,
        token: &str,
        username: &str,
        password: &str,
        now: u64,
    ) -> Result<Enrolment, Error> {
        let row = self.setup_row(token, now)?;
        self.check_new_name(username)?;
        crate::password::check_policy(password, &self.policy_words(username))
            .map_err(Error::Invalid)?;
        let hash = self.hash_password(password).await?;
        let secret = totp::new_secret();
        let _one = self.changes.lock().await;
        let (account, replaced) = {
            let mut conn = self.db()?;
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            if let Some(other) = store::account_by_name(&tx, username)? {
                if other.setup_token != row.digest {
                    return Err(Error::Invalid(format!(
                        "{username:?} is being set up by the other wizard (console or web); choose another name"
                    )));
                }
            }
            let replaced = store::delete_pending(&tx, Some(&row.digest))?;
            let a = store::insert_account(
                &tx,
                &NewAccount {
                    username,
                    role: ROLE_ROOT,
                    password_hash: &hash,
                    expires_at: 0,
                    created_at: now,
                    created_by: &format!("setup:{}", row.via),
                    setup_token: &row.digest,
                    totp_pending: &secret,
                },
                self.settings.uid_base,
                self.settings.uid_max,
            )?;
            tx.commit().map_err(Error::db("commit"))?;
            (a, replaced)
        };
        for (name, uid) in replaced {
            self.userdb.remove(&name, uid)?;
        }
        // The record must exist before setup ends: the proof of SSH access is a login as this user.
        self.userdb.write(&account)?;
        Ok(Enrolment {
            uri: totp::uri(&secret, username, &self.host),
            secret,
        })
    }

    fn proposal(&self, row: &SessionRow) -> Result<Account, Error> {
        store::pending_admin(&*self.db()?, &row.digest)?.ok_or_else(|| {
            Error::Refused("no administrator proposed yet: choose a name and password first".into())
        })
    }

    /// `SetupSecondFactor`: confirms the TOTP enrolment; returns the recovery codes (once).
    pub fn setup_second_factor(
        &self,
        token: &str,
        code: &str,
        now: u64,
    ) -> Result<Vec<String>, Error> {
        let row = self.setup_row(token, now)?;
        let admin = self.proposal(&row)?;
        if admin.totp_pending.is_empty() {
            return Err(Error::Refused(
                "the authenticator is already confirmed; propose the administrator again to start over".into(),
            ));
        }
        let step = totp::verify(&admin.totp_pending, code, now, 0).map_err(|_| {
            Error::Denied(
                "wrong code: check the authenticator app shows Rampart, and that this machine's clock is right"
                    .into(),
            )
        })?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| secrets::code(4)).collect();
        let digests: Vec<String> = codes
            .iter()
            .map(|c| secrets::digest(&secrets::normalize_code(c)))
            .collect();
        let mut conn = self.db()?;
        let tx = conn.transaction().map_err(Error::db("begin"))?;
        store::enrol_totp(&tx, admin.id, step, &digests)?;
        tx.commit().map_err(Error::db("commit"))?;
        Ok(codes)
    }

    /// The proposal behind a setup token, for the checks before [`Identity::setup_complete`].
    pub fn setup_proposal(&self, token: &str, now: u64) -> Result<Account, Error> {
        let row = self.setup_row(token, now)?;
        let admin = self.proposal(&row)?;
        if admin.totp_secret.is_empty() {
            return Err(Error::Refused(
                "the authenticator is not confirmed yet: type a code from it".into(),
            ));
        }
        Ok(admin)
    }

    /// `SetupFinish`, after the SSH checks: completes the setup for this token's administrator.
    pub async fn setup_complete(&self, token: &str, now: u64) -> Result<Completed, Error> {
        let admin = self.setup_proposal(token, now)?;
        self.ssh.ready_for(&admin.username).await?;
        let _one = self.changes.lock().await;
        let row = self.setup_row(token, now)?;
        let removed = {
            let mut conn = self.db()?;
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            let removed = store::complete_setup(&tx, admin.id, &row.via, &admin.username, now)?;
            tx.commit().map_err(Error::db("commit"))?;
            removed
        };
        for (name, uid) in &removed {
            self.userdb.remove(name, *uid)?;
        }
        Ok(Completed {
            info: self.setup_info()?,
            removed: removed.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// Setup is pending (used by callers that must refuse everything else until then).
    pub fn setup_pending(&self) -> Result<bool, Error> {
        Ok(store::setup(&*self.db()?)?.state == SETUP_PENDING)
    }
}
