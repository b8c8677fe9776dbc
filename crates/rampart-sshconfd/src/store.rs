//! The keys database (SQLite through rampart_common::db): accounts, keys, and the port with its change state.
//!
//! Functions take a `&Connection` so the same queries serve the writer and the read-only connection that answers
//! sshd's AuthorizedKeysCommand (which must never wait behind a port change).

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Error;
use crate::keys::ValidKey;
use crate::port_change::{Change, PortRecord, State};
use rampart_interfaces::ssh::{Account, KeyInfo};

/// Schema migrations; only additive (see rampart_common::db).
pub const MIGRATIONS: &[&str] = &["
CREATE TABLE accounts (
    user TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 1,
    expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE keys (
    fingerprint TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES accounts(user),
    line TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    bits INTEGER NOT NULL,
    comment TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    last_used INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX keys_by_user ON keys(user);
CREATE TABLE port (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    port INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'idle',
    old_port INTEGER NOT NULL DEFAULT 0,
    new_port INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL DEFAULT 0,
    deadline INTEGER NOT NULL DEFAULT 0,
    firewall_ports TEXT NOT NULL DEFAULT '',
    firewall_sources TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT ''
);
INSERT INTO port (id) VALUES (1);
-- Last accepted public-key login per local port: the evidence ConfirmPort asks for.
CREATE TABLE port_logins (
    port INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
"];

pub fn open(path: &std::path::Path) -> Result<Connection, Error> {
    Ok(rampart_common::db::open(path, MIGRATIONS)?)
}

const KEY_COLUMNS: &str =
    "user, fingerprint, algorithm, bits, comment, added_by, added_at, last_used, expires_at";

fn key_info(r: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    Ok(KeyInfo {
        user: r.get(0)?,
        fingerprint: r.get(1)?,
        algorithm: r.get(2)?,
        bits: r.get(3)?,
        comment: r.get(4)?,
        added_by: r.get(5)?,
        added_at: r.get(6)?,
        last_used: r.get(7)?,
        expires_at: r.get(8)?,
    })
}

/// Stores `key` for `user`, creating the account (enabled) if it is new. A key belongs to one account only:
/// shared keys would make logins unattributable.
pub fn add_key(
    conn: &mut Connection,
    user: &str,
    key: &ValidKey,
    added_by: &str,
    now: u64,
    expires_at: u64,
) -> Result<KeyInfo, Error> {
    let tx = conn
        .transaction()
        .map_err(Error::db("begin adding a key"))?;
    let owner: Option<String> = tx
        .query_row(
            "SELECT user FROM keys WHERE fingerprint = ?1",
            [&key.fingerprint],
            |r| r.get(0),
        )
        .optional()
        .map_err(Error::db("look up the key"))?;
    if let Some(owner) = owner {
        return Err(Error::Invalid(format!(
            "key {} is already stored for {owner}; a key belongs to one account (make a new key for {user})",
            key.fingerprint
        )));
    }
    tx.execute("INSERT OR IGNORE INTO accounts (user) VALUES (?1)", [user])
        .map_err(Error::db("create the account"))?;
    tx.execute(
        "INSERT INTO keys (fingerprint, user, line, algorithm, bits, comment, added_by, added_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![key.fingerprint, user, key.line, key.algorithm, key.bits, key.comment, added_by, now, expires_at],
    )
    .map_err(Error::db("store the key"))?;
    tx.commit().map_err(Error::db("commit the key"))?;
    Ok(KeyInfo {
        user: user.to_owned(),
        fingerprint: key.fingerprint.clone(),
        algorithm: key.algorithm.clone(),
        bits: key.bits,
        comment: key.comment.clone(),
        added_by: added_by.to_owned(),
        added_at: now,
        last_used: 0,
        expires_at,
    })
}

/// Removes a key; false when no key has that fingerprint.
pub fn remove_key(conn: &Connection, fingerprint: &str) -> Result<bool, Error> {
    let n = conn
        .execute("DELETE FROM keys WHERE fingerprint = ?1", [fingerprint])
        .map_err(Error::db("remove the key"))?;
    Ok(n > 0)
}

pub fn keys(conn: &Connection, user: Option<&str>) -> Result<Vec<KeyInfo>, Error> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM keys WHERE ?1 IS NULL OR user = ?1 ORDER BY user, added_at, fingerprint"
    );
    let mut stmt = conn.prepare(&sql).map_err(Error::db("list keys"))?;
    let rows = stmt
        .query_map([user], key_info)
        .map_err(Error::db("list keys"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read a key"))
}

pub fn key_count(conn: &Connection) -> Result<u64, Error> {
    conn.query_row("SELECT COUNT(*) FROM keys", [], |r| r.get(0))
        .map_err(Error::db("count keys"))
}

/// The lines sshd may accept for `user` at `now`: none for an unknown, disabled or expired account; expired keys
/// are left out.
pub fn authorized_keys(conn: &Connection, user: &str, now: u64) -> Result<Vec<String>, Error> {
    let mut stmt = conn
        .prepare(
            "SELECT k.line FROM keys k JOIN accounts a ON a.user = k.user
             WHERE k.user = ?1 AND a.enabled = 1
               AND (a.expires_at = 0 OR a.expires_at > ?2)
               AND (k.expires_at = 0 OR k.expires_at > ?2)
             ORDER BY k.added_at, k.fingerprint",
        )
        .map_err(Error::db("look up authorized keys"))?;
    let rows = stmt
        .query_map(params![user, now], |r| r.get(0))
        .map_err(Error::db("look up authorized keys"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read a key line"))
}

pub fn set_account(conn: &Connection, account: &Account) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO accounts (user, enabled, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(user) DO UPDATE SET enabled = excluded.enabled, expires_at = excluded.expires_at",
        params![account.user, account.enabled, account.expires_at],
    )
    .map_err(Error::db("set the account"))?;
    Ok(())
}

pub fn accounts(conn: &Connection) -> Result<Vec<Account>, Error> {
    let mut stmt = conn
        .prepare("SELECT user, enabled, expires_at FROM accounts ORDER BY user")
        .map_err(Error::db("list accounts"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Account {
                user: r.get(0)?,
                enabled: r.get(1)?,
                expires_at: r.get(2)?,
            })
        })
        .map_err(Error::db("list accounts"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read an account"))
}

/// Notes an accepted login: the key's last use, and (when known) the local port it arrived on.
pub fn record_login(
    conn: &Connection,
    user: &str,
    fingerprint: &str,
    local_port: Option<u16>,
    at: u64,
) -> Result<(), Error> {
    conn.execute(
        "UPDATE keys SET last_used = MAX(last_used, ?3) WHERE fingerprint = ?1 AND user = ?2",
        params![fingerprint, user, at],
    )
    .map_err(Error::db("record the key's last use"))?;
    if let Some(port) = local_port {
        conn.execute(
            "INSERT INTO port_logins (port, at) VALUES (?1, ?2)
             ON CONFLICT(port) DO UPDATE SET at = MAX(at, excluded.at)",
            params![port, at],
        )
        .map_err(Error::db("record the login's port"))?;
    }
    Ok(())
}

/// When the last public-key login arrived on `port`; 0 never.
pub fn last_login_on(conn: &Connection, port: u16) -> Result<u64, Error> {
    conn.query_row("SELECT at FROM port_logins WHERE port = ?1", [port], |r| {
        r.get(0)
    })
    .optional()
    .map(Option::unwrap_or_default)
    .map_err(Error::db("read logins by port"))
}

pub fn load_port(conn: &Connection) -> Result<PortRecord, Error> {
    conn.query_row(
        "SELECT port, state, old_port, new_port, started_at, deadline, firewall_ports, firewall_sources, message
         FROM port WHERE id = 1",
        [],
        |r| {
            let port: u16 = r.get(0)?;
            let name: String = r.get(1)?;
            let old: u16 = r.get(2)?;
            let ports: String = r.get(6)?;
            let sources: String = r.get(7)?;
            let change = Change {
                old: (old != 0).then_some(old),
                new: r.get(3)?,
                started_at: r.get(4)?,
                deadline: r.get(5)?,
                firewall_ports: ports.split(',').filter_map(|p| p.parse().ok()).collect(),
                firewall_sources: sources.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            };
            Ok((port, name, change, r.get::<_, String>(8)?))
        },
    )
    .map_err(Error::db("read the port state"))
    .and_then(|(port, name, change, message)| {
        let state = State::from_parts(&name, change)
            .ok_or_else(|| Error::Invalid(format!("the database holds an unknown port state {name:?}")))?;
        Ok(PortRecord {
            port: (port != 0).then_some(port),
            state,
            message,
        })
    })
}

pub fn save_port(conn: &Connection, rec: &PortRecord) -> Result<(), Error> {
    let empty = Change::default();
    let change = rec.state.change().unwrap_or(&empty);
    let ports: Vec<String> = change.firewall_ports.iter().map(u16::to_string).collect();
    conn.execute(
        "UPDATE port SET port = ?1, state = ?2, old_port = ?3, new_port = ?4, started_at = ?5, deadline = ?6,
         firewall_ports = ?7, firewall_sources = ?8, message = ?9 WHERE id = 1",
        params![
            rec.port.unwrap_or(0),
            rec.state.name(),
            change.old.unwrap_or(0),
            change.new,
            change.started_at,
            change.deadline,
            ports.join(","),
            change.firewall_sources.join(","),
            rec.message,
        ],
    )
    .map_err(Error::db("save the port state"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_key_line;

    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv8wtBO+shq1rXY7DQHUuHwsUld7bBdKwkYZfPbFm/C c";

    #[test]
    fn disabled_expired_and_unknown_accounts_get_no_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("k.db")).unwrap();
        let key = parse_key_line(LINE).unwrap();
        add_key(&mut c, "alice", &key, "root@console", 100, 0).unwrap();
        assert_eq!(
            authorized_keys(&c, "alice", 200).unwrap(),
            [key.line.as_str()]
        );
        assert!(authorized_keys(&c, "bob", 200).unwrap().is_empty());
        let err = add_key(&mut c, "bob", &key, "root@console", 100, 0).unwrap_err();
        assert!(
            err.to_string().contains("already stored for alice"),
            "{err}"
        );
        let acct = |enabled, expires_at| Account {
            user: "alice".into(),
            enabled,
            expires_at,
        };
        set_account(&c, &acct(false, 0)).unwrap();
        assert!(authorized_keys(&c, "alice", 200).unwrap().is_empty());
        set_account(&c, &acct(true, 150)).unwrap();
        assert!(authorized_keys(&c, "alice", 200).unwrap().is_empty());
        set_account(&c, &acct(true, 0)).unwrap();
        record_login(&c, "alice", &key.fingerprint, Some(2222), 300).unwrap();
        assert_eq!(keys(&c, Some("alice")).unwrap()[0].last_used, 300);
        assert_eq!(last_login_on(&c, 2222).unwrap(), 300);
        assert!(remove_key(&c, &key.fingerprint).unwrap());
        assert!(authorized_keys(&c, "alice", 200).unwrap().is_empty());
    }

    #[test]
    fn port_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("k.db")).unwrap();
        assert_eq!(load_port(&c).unwrap(), PortRecord::default());
        let rec = PortRecord {
            port: None,
            state: State::AwaitingLogin(Change {
                old: None,
                new: 2222,
                started_at: 5,
                deadline: 10,
                firewall_ports: vec![22],
                firewall_sources: vec!["10.0.0.0/8".into()],
            }),
            message: "x".into(),
        };
        save_port(&c, &rec).unwrap();
        assert_eq!(load_port(&c).unwrap(), rec);
    }
}
