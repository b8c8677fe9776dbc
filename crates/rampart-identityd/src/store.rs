//! The identity database (SQLite through rampart_common::db): accounts, recovery codes, sessions (including
//! login challenges and setup tokens) and the setup state. Secrets other than TOTP seeds are stored only as
//! hashes: passwords as argon2id PHC strings, tokens and recovery codes as SHA-256. TOTP seeds must be kept
//! as they are (the server computes the same codes as the app); the file is readable by identityd alone.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::error::Error;
use rampart_interfaces::identity::AccountInfo;

/// Schema migrations; only additive (see rampart_common::db).
pub const MIGRATIONS: &[&str] = &["
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    uid INTEGER NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- base32 TOTP seed once enrolled; '' before (the account must enrol at its next login).
    totp_secret TEXT NOT NULL DEFAULT '',
    -- a seed offered for enrolment and not yet confirmed with a code.
    totp_pending TEXT NOT NULL DEFAULT '',
    -- the last TOTP step accepted: codes for it or earlier steps are replays.
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_login INTEGER NOT NULL DEFAULT 0,
    -- during setup: the digest of the setup token that proposed this administrator; '' for real accounts.
    setup_token TEXT NOT NULL DEFAULT ''
);
CREATE TABLE recovery_codes (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    used_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, digest)
);
-- Sessions, login challenges (password checked, second factor pending) and setup tokens.
CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'challenge', 'setup')),
    account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    via TEXT NOT NULL DEFAULT '',
    csrf TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_account ON sessions(account_id);
CREATE TABLE setup (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL DEFAULT 'pending',
    completed_via TEXT NOT NULL DEFAULT '',
    completed_at INTEGER NOT NULL DEFAULT 0,
    admin TEXT NOT NULL DEFAULT ''
);
INSERT INTO setup (id) VALUES (1);
"];

pub fn open(path: &std::path::Path) -> Result<Connection, Error> {
    Ok(rampart_common::db::open(path, MIGRATIONS)?)
}

/// An account row, secrets included: never leaves the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub uid: u32,
    pub password_hash: String,
    pub totp_secret: String,
    pub totp_pending: String,
    pub totp_last_step: u64,
    pub disabled: bool,
    pub disabled_reason: String,
    pub expires_at: u64,
    pub created_at: u64,
    pub created_by: String,
    pub last_login: u64,
    pub setup_token: String,
}

impl Account {
    /// Disabled, or past its expiry.
    pub fn locked(&self, now: u64) -> bool {
        self.disabled || (self.expires_at != 0 && self.expires_at <= now)
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, username, role, uid, password_hash, totp_secret, totp_pending, totp_last_step, \
     disabled, disabled_reason, expires_at, created_at, created_by, last_login, setup_token";

fn account(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        username: r.get(1)?,
        role: r.get(2)?,
        uid: r.get(3)?,
        password_hash: r.get(4)?,
        totp_secret: r.get(5)?,
        totp_pending: r.get(6)?,
        totp_last_step: r.get(7)?,
        disabled: r.get(8)?,
        disabled_reason: r.get(9)?,
        expires_at: r.get(10)?,
        created_at: r.get(11)?,
        created_by: r.get(12)?,
        last_login: r.get(13)?,
        setup_token: r.get(14)?,
    })
}

pub fn account_by_name(conn: &Connection, name: &str) -> Result<Option<Account>, Error> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = ?1"),
        [name],
        account,
    )
    .optional()
    .map_err(Error::db("look up an account"))
}

pub fn account_by_id(conn: &Connection, id: i64) -> Result<Option<Account>, Error> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
        [id],
        account,
    )
    .optional()
    .map_err(Error::db("look up an account"))
}

/// Every account, pending setup administrators included.
pub fn all_accounts(conn: &Connection) -> Result<Vec<Account>, Error> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY username"
        ))
        .map_err(Error::db("list accounts"))?;
    let rows = stmt
        .query_map([], account)
        .map_err(Error::db("list accounts"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read an account"))
}

/// Real accounts (not setup proposals) as the bus shows them.
pub fn account_infos(conn: &Connection) -> Result<Vec<AccountInfo>, Error> {
    all_accounts(conn)?
        .into_iter()
        .filter(|a| a.setup_token.is_empty())
        .map(|a| info(conn, &a))
        .collect()
}

pub fn info(conn: &Connection, a: &Account) -> Result<AccountInfo, Error> {
    Ok(AccountInfo {
        username: a.username.clone(),
        role: a.role.clone(),
        uid: a.uid,
        disabled: a.disabled,
        disabled_reason: a.disabled_reason.clone(),
        expires_at: a.expires_at,
        created_at: a.created_at,
        created_by: a.created_by.clone(),
        last_login: a.last_login,
        totp_enrolled: !a.totp_secret.is_empty(),
        recovery_codes_left: recovery_left(conn, a.id)?,
    })
}

/// What a new account starts with.
#[derive(Debug)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub expires_at: u64,
    pub created_at: u64,
    pub created_by: &'a str,
    pub setup_token: &'a str,
    pub totp_pending: &'a str,
}

/// Inserts an account; its uid is `uid_base + id` (ids are never reused, so neither are uids).
pub fn insert_account(
    tx: &Transaction<'_>,
    new: &NewAccount<'_>,
    uid_base: u32,
    uid_max: u32,
) -> Result<Account, Error> {
    let next: i64 = tx
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'accounts'), 0) + 1",
            [],
            |r| r.get(0),
        )
        .map_err(Error::db("allocate an account id"))?;
    let uid = u32::try_from(next)
        .ok()
        .and_then(|n| uid_base.checked_add(n))
        .filter(|uid| *uid <= uid_max)
        .ok_or_else(|| {
            Error::Refused(format!(
                "no uid left in {uid_base}..={uid_max} for a new account"
            ))
        })?;
    tx.execute(
        "INSERT INTO accounts (id, username, role, uid, password_hash, totp_pending, expires_at, created_at,
                               created_by, setup_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            next,
            new.username,
            new.role,
            uid,
            new.password_hash,
            new.totp_pending,
            new.expires_at,
            new.created_at,
            new.created_by,
            new.setup_token
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            Error::Invalid(format!("an account named {:?} already exists", new.username))
        }
        other => Error::Db {
            op: "insert an account",
            source: other,
        },
    })?;
    account_by_id(tx, next)?.ok_or_else(|| Error::Invalid("the new account vanished".into()))
}

pub fn set_totp_pending(conn: &Connection, id: i64, secret: &str) -> Result<(), Error> {
    conn.execute(
        "UPDATE accounts SET totp_pending = ?2 WHERE id = ?1",
        params![id, secret],
    )
    .map_err(Error::db("store a TOTP enrolment"))?;
    Ok(())
}

/// Moves the pending seed into place with its first accepted step, and replaces the recovery codes.
pub fn enrol_totp(
    tx: &Transaction<'_>,
    id: i64,
    step: u64,
    recovery_digests: &[String],
) -> Result<(), Error> {
    tx.execute(
        "UPDATE accounts SET totp_secret = totp_pending, totp_pending = '', totp_last_step = ?2
         WHERE id = ?1 AND totp_pending != ''",
        params![id, step],
    )
    .map_err(Error::db("enrol TOTP"))?;
    tx.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [id])
        .map_err(Error::db("replace recovery codes"))?;
    for d in recovery_digests {
        tx.execute(
            "INSERT INTO recovery_codes (account_id, digest) VALUES (?1, ?2)",
            params![id, d],
        )
        .map_err(Error::db("store a recovery code"))?;
    }
    Ok(())
}

/// Records `step` as the last accepted one — only if it is later than the stored one, so of two concurrent logins
/// with the same code exactly one wins. Returns whether this call won.
pub fn advance_step(conn: &Connection, id: i64, step: u64) -> Result<bool, Error> {
    let n = conn
        .execute(
            "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
            params![id, step],
        )
        .map_err(Error::db("record a TOTP step"))?;
    Ok(n == 1)
}

/// Spends a recovery code; false when it is unknown or already used.
pub fn use_recovery_code(
    conn: &Connection,
    id: i64,
    digest: &str,
    now: u64,
) -> Result<bool, Error> {
    let n = conn
        .execute(
            "UPDATE recovery_codes SET used_at = ?3 WHERE account_id = ?1 AND digest = ?2 AND used_at = 0",
            params![id, digest, now],
        )
        .map_err(Error::db("use a recovery code"))?;
    Ok(n == 1)
}

pub fn recovery_left(conn: &Connection, id: i64) -> Result<u32, Error> {
    conn.query_row(
        "SELECT COUNT(*) FROM recovery_codes WHERE account_id = ?1 AND used_at = 0",
        [id],
        |r| r.get(0),
    )
    .map_err(Error::db("count recovery codes"))
}

/// Forgets the TOTP seed and recovery codes: the account enrols again at its next login.
pub fn reset_totp(tx: &Transaction<'_>, id: i64) -> Result<(), Error> {
    tx.execute(
        "UPDATE accounts SET totp_secret = '', totp_pending = '', totp_last_step = 0 WHERE id = ?1",
        [id],
    )
    .map_err(Error::db("reset TOTP"))?;
    tx.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [id])
        .map_err(Error::db("delete recovery codes"))?;
    Ok(())
}

pub fn set_disabled(conn: &Connection, id: i64, disabled: bool, reason: &str) -> Result<(), Error> {
    conn.execute(
        "UPDATE accounts SET disabled = ?2, disabled_reason = ?3 WHERE id = ?1",
        params![id, disabled, if disabled { reason } else { "" }],
    )
    .map_err(Error::db("disable an account"))?;
    Ok(())
}

pub fn set_expiry(conn: &Connection, id: i64, expires_at: u64) -> Result<(), Error> {
    conn.execute(
        "UPDATE accounts SET expires_at = ?2 WHERE id = ?1",
        params![id, expires_at],
    )
    .map_err(Error::db("set an account's expiry"))?;
    Ok(())
}

pub fn set_password(conn: &Connection, id: i64, hash: &str) -> Result<(), Error> {
    conn.execute(
        "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )
    .map_err(Error::db("set a password"))?;
    Ok(())
}

pub fn touch_login(conn: &Connection, id: i64, now: u64) -> Result<(), Error> {
    conn.execute(
        "UPDATE accounts SET last_login = ?2 WHERE id = ?1",
        params![id, now],
    )
    .map_err(Error::db("record a login"))?;
    Ok(())
}

/// Disables every account whose expiry has come; returns their names.
pub fn expire_due(tx: &Transaction<'_>, now: u64) -> Result<Vec<String>, Error> {
    let names: Vec<String> = {
        let mut stmt = tx
            .prepare(
                "SELECT username FROM accounts
                 WHERE expires_at != 0 AND expires_at <= ?1 AND disabled = 0 AND setup_token = ''",
            )
            .map_err(Error::db("find expired accounts"))?;
        let rows = stmt
            .query_map([now], |r| r.get(0))
            .map_err(Error::db("find expired accounts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(Error::db("read an expired account"))?
    };
    for name in &names {
        tx.execute(
            "UPDATE accounts SET disabled = 1, disabled_reason = 'expired' WHERE username = ?1",
            [name],
        )
        .map_err(Error::db("disable an expired account"))?;
        tx.execute(
            "DELETE FROM sessions WHERE account_id = (SELECT id FROM accounts WHERE username = ?1)",
            [name],
        )
        .map_err(Error::db("end an expired account's sessions"))?;
    }
    Ok(names)
}

// --- sessions, challenges, setup tokens -------------------------------------------------------------------------

pub const KIND_SESSION: &str = "session";
pub const KIND_CHALLENGE: &str = "challenge";
pub const KIND_SETUP: &str = "setup";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub digest: String,
    pub id: String,
    pub kind: String,
    pub account_id: Option<i64>,
    pub via: String,
    pub csrf: String,
    pub source: String,
    pub created_at: u64,
    pub last_seen: u64,
    pub expires_at: u64,
    pub failures: u32,
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        digest: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        account_id: r.get(3)?,
        via: r.get(4)?,
        csrf: r.get(5)?,
        source: r.get(6)?,
        created_at: r.get(7)?,
        last_seen: r.get(8)?,
        expires_at: r.get(9)?,
        failures: r.get(10)?,
    })
}

pub fn insert_session(conn: &Connection, s: &SessionRow) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO sessions (digest, id, kind, account_id, via, csrf, source, created_at, last_seen, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.digest,
            s.id,
            s.kind,
            s.account_id,
            s.via,
            s.csrf,
            s.source,
            s.created_at,
            s.last_seen,
            s.expires_at
        ],
    )
    .map_err(Error::db("store a session"))?;
    Ok(())
}

pub fn session(conn: &Connection, digest: &str) -> Result<Option<SessionRow>, Error> {
    conn.query_row(
        "SELECT digest, id, kind, account_id, via, csrf, source, created_at, last_seen, expires_at, failures
         FROM sessions WHERE digest = ?1",
        [digest],
        session_row,
    )
    .optional()
    .map_err(Error::db("look up a session"))
}

pub fn touch_session(conn: &Connection, digest: &str, now: u64) -> Result<(), Error> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?2 WHERE digest = ?1",
        params![digest, now],
    )
    .map_err(Error::db("refresh a session"))?;
    Ok(())
}

/// Counts a wrong second factor on a challenge; returns the new count.
pub fn challenge_failed(conn: &Connection, digest: &str) -> Result<u32, Error> {
    conn.query_row(
        "UPDATE sessions SET failures = failures + 1 WHERE digest = ?1 RETURNING failures",
        [digest],
        |r| r.get(0),
    )
    .optional()
    .map(|n| n.unwrap_or(u32::MAX))
    .map_err(Error::db("count a wrong code"))
}

/// Deletes one session; whether it existed.
pub fn delete_session(conn: &Connection, digest: &str) -> Result<bool, Error> {
    conn.execute("DELETE FROM sessions WHERE digest = ?1", [digest])
        .map(|n| n == 1)
        .map_err(Error::db("end a session"))
}

/// Ends every session and challenge of an account except `keep`; returns how many.
pub fn delete_sessions_of(conn: &Connection, account_id: i64, keep: &str) -> Result<u32, Error> {
    conn.execute(
        "DELETE FROM sessions WHERE account_id = ?1 AND digest != ?2",
        params![account_id, keep],
    )
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    .map_err(Error::db("end an account's sessions"))
}

pub fn delete_setup_sessions(conn: &Connection) -> Result<(), Error> {
    conn.execute("DELETE FROM sessions WHERE kind = 'setup'", [])
        .map_err(Error::db("end the setup tokens"))?;
    Ok(())
}

/// Deletes sessions past their absolute expiry or idle for longer than `idle_secs`; returns (id, account) of the
/// full sessions removed, for the journal.
pub fn purge_sessions(
    conn: &Connection,
    now: u64,
    idle_secs: u64,
) -> Result<Vec<(String, String)>, Error> {
    let mut stmt = conn
        .prepare(
            "DELETE FROM sessions WHERE expires_at <= ?1 OR (kind = 'session' AND last_seen + ?2 <= ?1)
             RETURNING id, kind, COALESCE((SELECT username FROM accounts WHERE accounts.id = account_id), '')",
        )
        .map_err(Error::db("purge sessions"))?;
    let rows = stmt
        .query_map(params![now, idle_secs], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(Error::db("purge sessions"))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, kind, user) = row.map_err(Error::db("purge sessions"))?;
        if kind == KIND_SESSION {
            out.push((id, user));
        }
    }
    Ok(out)
}

// --- setup -----------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRow {
    pub state: String,
    pub completed_via: String,
    pub completed_at: u64,
    pub admin: String,
}

pub fn setup(conn: &Connection) -> Result<SetupRow, Error> {
    conn.query_row(
        "SELECT state, completed_via, completed_at, admin FROM setup WHERE id = 1",
        [],
        |r| {
            Ok(SetupRow {
                state: r.get(0)?,
                completed_via: r.get(1)?,
                completed_at: r.get(2)?,
                admin: r.get(3)?,
            })
        },
    )
    .map_err(Error::db("read the setup state"))
}

/// The administrator a setup token proposed, if any.
pub fn pending_admin(conn: &Connection, setup_digest: &str) -> Result<Option<Account>, Error> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE setup_token = ?1"),
        [setup_digest],
        account,
    )
    .optional()
    .map_err(Error::db("look up the proposed administrator"))
}

/// Deletes the proposals of one setup token (`Some`) or of all (`None`); returns (name, uid) of each.
pub fn delete_pending(
    tx: &Transaction<'_>,
    setup_digest: Option<&str>,
) -> Result<Vec<(String, u32)>, Error> {
    let mut stmt = tx
        .prepare(
            "DELETE FROM accounts WHERE setup_token != '' AND (?1 IS NULL OR setup_token = ?1)
             RETURNING username, uid",
        )
        .map_err(Error::db("delete proposed administrators"))?;
    let rows = stmt
        .query_map([setup_digest], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(Error::db("delete proposed administrators"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("delete proposed administrators"))
}

/// Completes the setup: the winning proposal becomes a real account, the others go (returned as (name, uid)),
/// and every setup token is revoked.
pub fn complete_setup(
    tx: &Transaction<'_>,
    admin_id: i64,
    via: &str,
    admin: &str,
    now: u64,
) -> Result<Vec<(String, u32)>, Error> {
    tx.execute(
        "UPDATE accounts SET setup_token = '' WHERE id = ?1",
        [admin_id],
    )
    .map_err(Error::db("activate the administrator"))?;
    let gone = delete_pending(tx, None)?;
    tx.execute("DELETE FROM sessions WHERE kind = 'setup'", [])
        .map_err(Error::db("end the setup tokens"))?;
    tx.execute(
        "UPDATE setup SET state = 'complete', completed_via = ?1, completed_at = ?2, admin = ?3 WHERE id = 1",
        params![via, now, admin],
    )
    .map_err(Error::db("complete the setup"))?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("identity.db")).unwrap();
        (dir, conn)
    }

    fn add(conn: &mut Connection, name: &str, setup: &str) -> Account {
        let tx = conn.transaction().unwrap();
        let a = insert_account(
            &tx,
            &NewAccount {
                username: name,
                role: "admin",
                password_hash: "$argon2id$x",
                expires_at: 0,
                created_at: 1,
                created_by: "test",
                setup_token: setup,
                totp_pending: "SEED",
            },
            10_000,
            19_999,
        )
        .unwrap();
        tx.commit().unwrap();
        a
    }

    #[test]
    fn uids_follow_ids_and_are_never_reused() {
        let (_d, mut conn) = db();
        let a = add(&mut conn, "alice", "");
        let b = add(&mut conn, "bob", "tok");
        assert_eq!((a.uid, b.uid), (10_001, 10_002));
        let tx = conn.transaction().unwrap();
        assert_eq!(
            delete_pending(&tx, None).unwrap(),
            vec![("bob".to_owned(), 10_002)]
        );
        tx.commit().unwrap();
        assert_eq!(add(&mut conn, "carol", "").uid, 10_003);
        let tx = conn.transaction().unwrap();
        let dup = insert_account(
            &tx,
            &NewAccount {
                username: "alice",
                role: "admin",
                password_hash: "",
                expires_at: 0,
                created_at: 1,
                created_by: "t",
                setup_token: "",
                totp_pending: "",
            },
            10_000,
            19_999,
        );
        assert!(matches!(dup, Err(Error::Invalid(m)) if m.contains("already exists")));
    }

    #[test]
    fn a_step_advances_once_and_recovery_codes_are_single_use() {
        let (_d, mut conn) = db();
        let a = add(&mut conn, "alice", "");
        let tx = conn.transaction().unwrap();
        enrol_totp(&tx, a.id, 100, &["d1".into(), "d2".into()]).unwrap();
        tx.commit().unwrap();
        let a = account_by_id(&conn, a.id).unwrap().unwrap();
        assert_eq!(
            (
                a.totp_secret.as_str(),
                a.totp_pending.as_str(),
                a.totp_last_step
            ),
            ("SEED", "", 100)
        );
        assert!(!advance_step(&conn, a.id, 100).unwrap());
        assert!(advance_step(&conn, a.id, 101).unwrap());
        assert!(!advance_step(&conn, a.id, 101).unwrap());
        assert!(use_recovery_code(&conn, a.id, "d1", 5).unwrap());
        assert!(!use_recovery_code(&conn, a.id, "d1", 6).unwrap());
        assert!(!use_recovery_code(&conn, a.id, "nope", 6).unwrap());
        assert_eq!(recovery_left(&conn, a.id).unwrap(), 1);
    }

    #[test]
    fn expiry_disables_and_ends_sessions() {
        let (_d, mut conn) = db();
        let a = add(&mut conn, "alice", "");
        set_expiry(&conn, a.id, 50).unwrap();
        insert_session(
            &conn,
            &SessionRow {
                digest: "x".into(),
                id: "i".into(),
                kind: KIND_SESSION.into(),
                account_id: Some(a.id),
                via: String::new(),
                csrf: "c".into(),
                source: String::new(),
                created_at: 1,
                last_seen: 1,
                expires_at: 1000,
                failures: 0,
            },
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        assert!(expire_due(&tx, 49).unwrap().is_empty());
        assert_eq!(expire_due(&tx, 50).unwrap(), vec!["alice".to_owned()]);
        tx.commit().unwrap();
        let a = account_by_id(&conn, a.id).unwrap().unwrap();
        assert!(a.disabled && a.disabled_reason == "expired" && a.locked(51));
        assert!(session(&conn, "x").unwrap().is_none());
    }
}
