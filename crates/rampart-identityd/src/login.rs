//! Logging in: password, then a second factor, then a fresh session token.
//!
//! 1. [`Identity::login`]: throttling first (no hash is computed for a throttled account or source), then the
//!    password (unknown accounts cost the same time as known ones), then a challenge token valid for a few
//!    minutes. An account without TOTP gets a new seed to enrol with the challenge.
//! 2. [`Identity::second_factor`]: a TOTP code (once per step: replays are refused) or one of the account's
//!    recovery codes (once). Five wrong codes kill the challenge. Success deletes the challenge and issues a new
//!    session token — the token is rotated at every login, never carried over.
//!
//! Every refusal carries the same text for unknown accounts, wrong passwords and locked accounts, so the client
//! learns nothing about which names exist. The reason goes to identityd's own journal (for the administrator).

use rampart_interfaces::identity::{Challenge, Enrolment, Session, SETUP_PENDING};

use crate::error::Error;
use crate::identity::Identity;
use crate::secrets;
use crate::store::{self, SessionRow, KIND_CHALLENGE, KIND_SESSION};
use crate::totp;

/// What a refused first factor looks like to the client, whatever the reason.
pub const BAD_LOGIN: &str = "wrong user name or password";
const BAD_CODE: &str = "wrong code";
const REPLAYED_CODE: &str = "that code was already used; wait for the next one";
/// Wrong second-factor codes a challenge survives.
const CHALLENGE_TRIES: u32 = 5;
/// Recovery codes given at each enrolment.
pub const RECOVERY_CODES: usize = 10;

/// Why a login step failed, for identityd's journal and the panel's auth log (`RAMPART_AUTH_REASON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownUser,
    BadPassword,
    Locked,
    Throttled,
    BadTotp,
    ReplayedTotp,
    BadRecoveryCode,
    Expired,
    Setup,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownUser => "unknown-user",
            Reason::BadPassword => "bad-password",
            Reason::Locked => "locked",
            Reason::Throttled => "throttled",
            Reason::BadTotp => "bad-totp",
            Reason::ReplayedTotp => "replayed-totp",
            Reason::BadRecoveryCode => "bad-recovery-code",
            Reason::Expired => "challenge-expired",
            Reason::Setup => "setup-pending",
        }
    }
}

/// A refused login step: the client's text and the reason behind it.
#[derive(Debug)]
pub struct Refused {
    pub reason: Reason,
    pub error: Error,
}

fn refuse(reason: Reason, text: impl Into<String>) -> Refused {
    Refused {
        reason,
        error: Error::Denied(text.into()),
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused {
            reason: Reason::Locked,
            error,
        }
    }
}

impl Identity {
    /// First factor. On success the challenge names the account for the second step.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: &str,
        now: u64,
    ) -> Result<Challenge, Refused> {
        if store::setup(&*self.db()?)?.state == SETUP_PENDING {
            return Err(refuse(
                Reason::Setup,
                "setup is not complete: finish the first-boot wizard on the console or with the setup code",
            ));
        }
        let name = crate::secrets::bounded(username, 64);
        if let Err(wait) = Self::lock(&self.throttle)?.check(name, source, now) {
            return Err(refuse(
                Reason::Throttled,
                format!("too many failed logins; try again in {} s", wait.0),
            ));
        }
        if password.len() > crate::password::MAX_BYTES {
            return Err(refuse(Reason::BadPassword, BAD_LOGIN));
        }
        let account =
            store::account_by_name(&*self.db()?, name)?.filter(|a| a.setup_token.is_empty());
        let (pw, phc) = (
            password.to_owned(),
            account.as_ref().map(|a| a.password_hash.clone()),
        );
        let matches = self
            .with_hasher(move |h| match phc {
                Some(phc) => h.verify(&pw, &phc),
                None => h.verify_nobody(&pw),
            })
            .await?;
        let account = match (account, matches) {
            (None, _) => {
                Self::lock(&self.throttle)?.failed(name, source, now);
                return Err(refuse(Reason::UnknownUser, BAD_LOGIN));
            }
            (Some(_), false) => {
                Self::lock(&self.throttle)?.failed(name, source, now);
                return Err(refuse(Reason::BadPassword, BAD_LOGIN));
            }
            (Some(a), true) if a.locked(now) => return Err(refuse(Reason::Locked, BAD_LOGIN)),
            (Some(a), true) => a,
        };
        let token = secrets::token();
        let expires_at = now + self.settings.challenge.as_secs();
        let conn = self.db()?;
        let enrolment = if account.totp_secret.is_empty() {
            let secret = totp::new_secret();
            store::set_totp_pending(&conn, account.id, &secret)?;
            Enrolment {
                uri: totp::uri(&secret, &account.username, &self.host),
                secret,
            }
        } else {
            Enrolment {
                secret: String::new(),
                uri: String::new(),
            }
        };
        store::insert_session(
            &conn,
            &SessionRow {
                digest: secrets::digest(&token),
                id: secrets::id(),
                kind: KIND_CHALLENGE.into(),
                account_id: Some(account.id),
                via: String::new(),
                csrf: String::new(),
                source: source.to_owned(),
                created_at: now,
                last_seen: now,
                expires_at,
                failures: 0,
            },
        )?;
        Ok(Challenge {
            token,
            expires_at,
            enrol: !enrolment.secret.is_empty(),
            enrolment,
        })
    }

    /// Second factor; returns the new session and the account name.
    pub fn second_factor(
        &self,
        challenge: &str,
        code: &str,
        source: &str,
        now: u64,
    ) -> Result<Session, Refused> {
        let mut conn = self.db()?;
        let digest = secrets::digest(challenge);
        let row = store::session(&conn, &digest)?
            .filter(|r| r.kind == KIND_CHALLENGE && r.expires_at > now)
            .ok_or_else(|| {
                refuse(
                    Reason::Expired,
                    "the login has expired; enter your password again",
                )
            })?;
        let account = row
            .account_id
            .map(|id| store::account_by_id(&conn, id))
            .transpose()?
            .flatten()
            .filter(|a| !a.locked(now))
            .ok_or_else(|| refuse(Reason::Locked, BAD_LOGIN))?;
        if let Err(wait) = Self::lock(&self.throttle)?.check(&account.username, source, now) {
            return Err(refuse(
                Reason::Throttled,
                format!("too many failed logins; try again in {} s", wait.0),
            ));
        }
        let wrong =
            |conn: &rusqlite::Connection, reason: Reason, text: &str| -> Result<Refused, Error> {
                Self::lock(&self.throttle)?.failed(&account.username, source, now);
                if store::challenge_failed(conn, &digest)? >= CHALLENGE_TRIES {
                    store::delete_session(conn, &digest)?;
                    return Ok(refuse(
                        reason,
                        "too many wrong codes; enter your password again",
                    ));
                }
                Ok(refuse(reason, text))
            };
        let enrolling = account.totp_secret.is_empty();
        let mut recovery_codes = Vec::new();
        if enrolling {
            // First code from a new authenticator: proves the seed was set up, then becomes the account's seed.
            let step = match totp::verify(&account.totp_pending, code, now, 0) {
                Ok(step) => step,
                Err(_) => return Err(wrong(&conn, Reason::BadTotp, BAD_CODE)?),
            };
            recovery_codes = (0..RECOVERY_CODES).map(|_| secrets::code(4)).collect();
            let digests: Vec<String> = recovery_codes
                .iter()
                .map(|c| secrets::digest(&secrets::normalize_code(c)))
                .collect();
            let tx = conn.transaction().map_err(Error::db("begin"))?;
            store::enrol_totp(&tx, account.id, step, &digests)?;
            tx.commit().map_err(Error::db("commit"))?;
        } else if code.trim().len() == totp::DIGITS {
            match totp::verify(&account.totp_secret, code, now, account.totp_last_step) {
                Ok(step) if store::advance_step(&conn, account.id, step)? => {}
                // Lost the race to a concurrent login with the same code, or an old code: a replay either way.
                Ok(_) | Err(totp::Refusal::Replayed) => {
                    return Err(wrong(&conn, Reason::ReplayedTotp, REPLAYED_CODE)?);
                }
                Err(totp::Refusal::Wrong) => return Err(wrong(&conn, Reason::BadTotp, BAD_CODE)?),
            }
        } else {
            let d = secrets::digest(&secrets::normalize_code(code));
            if !store::use_recovery_code(&conn, account.id, &d, now)? {
                return Err(wrong(&conn, Reason::BadRecoveryCode, BAD_CODE)?);
            }
            log::warn!(
                "{} logged in with a recovery code; {} left",
                account.username,
                store::recovery_left(&conn, account.id)?
            );
        }
        Self::lock(&self.throttle)?.succeeded(&account.username);
        store::delete_session(&conn, &digest)?;
        let session = self.open_session(&conn, &account, source, now)?;
        store::touch_login(&conn, account.id, now)?;
        Ok(Session {
            recovery_codes,
            ..session
        })
    }

    pub(crate) fn open_session(
        &self,
        conn: &rusqlite::Connection,
        account: &store::Account,
        source: &str,
        now: u64,
    ) -> Result<Session, Error> {
        let token = secrets::token();
        let row = SessionRow {
            digest: secrets::digest(&token),
            id: secrets::id(),
            kind: KIND_SESSION.into(),
            account_id: Some(account.id),
            via: String::new(),
            csrf: secrets::token(),
            source: source.to_owned(),
            created_at: now,
            last_seen: now,
            expires_at: now + self.settings.session_max.as_secs(),
            failures: 0,
        };
        store::insert_session(conn, &row)?;
        Ok(Session {
            token,
            id: row.id,
            csrf: row.csrf,
            username: account.username.clone(),
            role: account.role.clone(),
            idle_expires_at: (now + self.settings.session_idle.as_secs()).min(row.expires_at),
            expires_at: row.expires_at,
            recovery_codes: Vec::new(),
        })
    }

    /// Ends the session behind `token`; returns (session id, account) when there was one.
    pub fn logout(&self, token: &str) -> Result<Option<(String, String)>, Error> {
        let conn = self.db()?;
        let digest = secrets::digest(token);
        let Some(row) = store::session(&conn, &digest)? else {
            return Ok(None);
        };
        store::delete_session(&conn, &digest)?;
        let user = row
            .account_id
            .map(|id| store::account_by_id(&conn, id))
            .transpose()?
            .flatten()
            .map(|a| a.username)
            .unwrap_or_default();
        Ok(Some((row.id, user)))
    }

    /// Changes the password of `token`'s account; its other sessions end (a stolen session does not outlive the
    /// change that was meant to shut it out).
    pub async fn change_password(
        &self,
        token: &str,
        old: &str,
        new: &str,
    ) -> Result<String, Error> {
        let (row, account) = {
            let conn = self.db()?;
            let digest = secrets::digest(token);
            let row = store::session(&conn, &digest)?
                .filter(|r| r.kind == KIND_SESSION)
                .ok_or_else(|| Error::Denied("the session has ended; log in again".into()))?;
            let account = row
                .account_id
                .map(|id| store::account_by_id(&conn, id))
                .transpose()?
                .flatten()
                .ok_or_else(|| Error::Denied("the session has ended; log in again".into()))?;
            (row, account)
        };
        crate::password::check_policy(new, &self.policy_words(&account.username))
            .map_err(Error::Invalid)?;
        let (old, new, phc) = (
            old.to_owned(),
            new.to_owned(),
            account.password_hash.clone(),
        );
        let hashed = self
            .with_hasher(move |h| {
                if !h.verify(&old, &phc) {
                    return Err(Error::Denied("the current password is wrong".into()));
                }
                h.hash(&new)
            })
            .await??;
        let mut conn = self.db()?;
        let tx = conn.transaction().map_err(Error::db("begin"))?;
        store::set_password(&tx, account.id, &hashed)?;
        let ended = store::delete_sessions_of(&tx, account.id, &row.digest)?;
        tx.commit().map_err(Error::db("commit"))?;
        log::info!(
            "{} changed their password; {ended} other session(s) ended",
            account.username
        );
        Ok(account.username)
    }
}
