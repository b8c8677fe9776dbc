//! SQLite, opened the same way everywhere: WAL, `synchronous=FULL` (a committed transaction survives power loss:
//! the WAL is fsynced at every commit), a busy timeout, foreign keys, a quick integrity check, and numbered
//! migrations tracked in `PRAGMA user_version`, each applied in its own transaction.
//!
//! A damaged or newer-than-known database is refused with an error naming the file; it is never "repaired" by
//! recreating it, so bad input loses nothing. Migration rule (for rollback): a migration may only add tables,
//! columns with defaults, or indexes, so the previous version can still read and write the database.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::Error;

/// Opens `path` read-write (creating it), checks it, and applies `migrations[user_version..]`.
/// `migrations[i]` brings the schema from version `i` to `i + 1`.
pub fn open(path: &Path, migrations: &[&str]) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|source| Error::DbOpen {
        path: path.into(),
        source,
    })?;
    configure(&conn, path)?;
    check(&conn, path)?;
    migrate(&mut conn, path, migrations)?;
    Ok(conn)
}

/// Opens `path` for reading only (queries running beside the writer); the file must exist and be checked already.
pub fn open_read_only(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::DbOpen {
        path: path.into(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|source| Error::DbOpen {
            path: path.into(),
            source,
        })?;
    Ok(conn)
}

fn configure(conn: &Connection, path: &Path) -> Result<(), Error> {
    let corrupt = |e: rusqlite::Error| classify(path, e);
    conn.busy_timeout(Duration::from_secs(5)).map_err(corrupt)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::DbCorrupt {
            path: path.into(),
            detail: format!("cannot enable WAL (journal_mode={mode})"),
        });
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(corrupt)?;
    Ok(())
}

fn check(conn: &Connection, path: &Path) -> Result<(), Error> {
    let result: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    if result != "ok" {
        return Err(Error::DbCorrupt {
            path: path.into(),
            detail: result,
        });
    }
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), Error> {
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    if found > known {
        return Err(Error::DbTooNew {
            path: path.into(),
            found,
            known,
        });
    }
    for (version, sql) in (found..known).zip(&migrations[found as usize..]) {
        let to = version + 1;
        let err = |source| Error::DbMigrate {
            path: path.into(),
            version: to,
            source,
        };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", to).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// "not a database" and "malformed" are damage, not I/O trouble: say so.
fn classify(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::DbCorrupt {
            path: path.into(),
            detail: e.to_string(),
        },
        _ => Error::DbOpen {
            path: path.into(),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[&str] = &[
        "CREATE TABLE t (x INTEGER NOT NULL);",
        "ALTER TABLE t ADD COLUMN y TEXT NOT NULL DEFAULT '';",
    ];

    #[test]
    fn migrates_once_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = open(&path, &M[..1]).unwrap();
        conn.execute("INSERT INTO t (x) VALUES (7)", []).unwrap();
        drop(conn);
        let conn = open(&path, M).unwrap();
        let (x, y): (i64, String) = conn
            .query_row("SELECT x, y FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((x, y.as_str()), (7, ""));
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(open(&path, M).unwrap());
        let err = open(&path, &M[..1]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DbTooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn garbage_file_is_reported_as_damaged_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let garbage = vec![0x5au8; 8192];
        std::fs::write(&path, &garbage).unwrap();
        let err = open(&path, M).unwrap_err();
        assert!(matches!(err, Error::DbCorrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}
