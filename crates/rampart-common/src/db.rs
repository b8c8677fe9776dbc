//! SQLite, opened the same way everywhere: WAL, `synchronous=FULL` (a committed transaction survives power loss:
//! the WAL is fsynced at every commit), a busy timeout, foreign keys, a quick integrity check, and numbered
//! migrations tracked in `PRAGMA user_version`, each applied in its own transaction.
//!
//! A damaged database is refused with an error naming the file; it is never "repaired" by recreating it, so bad
//! input loses nothing.
//!
//! **Rollback rule.** After an update falls back to the old slot, the old version opens the database the new one
//! migrated. So a migration may only add tables, columns with defaults, or indexes: then every table and column
//! the old version knows is still there, and it reads and writes the newer schema as it is (its `user_version`
//! stays the newer one; nothing is migrated down). A schema change that older versions must not use (a dropped or
//! retyped column, changed meaning) is opened with [`open_with_min_reader`], which records in the database the
//! oldest schema version that may still open it; a version below that refuses the database with
//! [`Error::DbTooNew`] and the updater's pre-update snapshot is the way back.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::Error;

/// Opens `path` read-write (creating it), checks it, and applies `migrations[user_version..]`.
/// `migrations[i]` brings the schema from version `i` to `i + 1`; every one is additive (the rollback rule above).
pub fn open(path: &Path, migrations: &[&str]) -> Result<Connection, Error> {
    open_with_min_reader(path, migrations, 0)
}

/// [`open`], for a schema whose versions below `min_reader` must no longer open the database (see the rollback
/// rule). The recorded value only ever rises.
pub fn open_with_min_reader(
    path: &Path,
    migrations: &[&str],
    min_reader: u32,
) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|source| Error::DbOpen {
        path: path.into(),
        source,
    })?;
    configure(&conn, path)?;
    check(&conn, path)?;
    migrate(&mut conn, path, migrations, min_reader)?;
    Ok(conn)
}

/// Where the oldest schema version that may open the database is kept (not part of any daemon's schema).
const META: &str = "CREATE TABLE IF NOT EXISTS rampart_schema (min_reader INTEGER NOT NULL)";

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

/// The recorded oldest reader; 0 when none was recorded (every schema so far is additive).
fn recorded_min_reader(conn: &Connection, path: &Path) -> Result<u32, Error> {
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'rampart_schema'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(path, e))?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(min_reader), 0) FROM rampart_schema",
        [],
        |r| r.get(0),
    )
    .map_err(|e| classify(path, e))
}

fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
    min_reader: u32,
) -> Result<(), Error> {
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    let recorded = recorded_min_reader(conn, path)?;
    if found > known {
        // A newer version migrated it: usable as it is unless that version said we may not (rollback rule).
        if recorded > known {
            return Err(Error::DbTooNew {
                path: path.into(),
                found,
                known,
            });
        }
        log::info!(
            "database {} has schema version {found}, newer than this program's {known}; its additions are \
             left alone (rollback rule)",
            path.display()
        );
        return Ok(());
    }
    if min_reader > recorded {
        let err = |source| Error::DbMigrate {
            path: path.into(),
            version: found,
            source,
        };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(&format!("{META}; DELETE FROM rampart_schema;"))
            .map_err(err)?;
        tx.execute(
            "INSERT INTO rampart_schema (min_reader) VALUES (?1)",
            [min_reader],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
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
    fn the_old_version_uses_a_newer_additive_schema_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = open(&path, M).unwrap();
        conn.execute("INSERT INTO t (x, y) VALUES (1, 'new')", [])
            .unwrap();
        drop(conn);
        // Rolled back: the old version knows only migration 1 and writes without the new column.
        let conn = open(&path, &M[..1]).unwrap();
        conn.execute("INSERT INTO t (x) VALUES (2)", []).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2, "never migrated down");
        drop(conn);
        // Forward again: both rows, the new column's default for the old version's row.
        let conn = open(&path, M).unwrap();
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT x, y FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [(1, "new".to_owned()), (2, String::new())]);
    }

    #[test]
    fn a_schema_that_older_readers_must_not_use_is_refused_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(open_with_min_reader(&path, M, 2).unwrap());
        // The recorded minimum never goes down, whoever opens it next.
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
