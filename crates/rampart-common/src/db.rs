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
//!
//! **Snapshots across versions.** Each database records which image version (`IMAGE_VERSION`, os-release) last
//! opened it. When another version opens it, before any migration and before the daemon can change a row, a
//! consistent copy (`VACUUM INTO`, beside a running writer too) is kept as
//! `<its directory>/snapshots/<version that last opened it>/<file>`, and only then the record changes; the newest
//! [`KEEP_SNAPSHOTS`] versions are kept. So after an update the state the old version left is kept whatever the
//! new one does with it, and after a fallback the state the failed version left is kept beside it. Each daemon
//! does this for its own databases, as its own user in its own state directory: the updater needs no access to
//! them. A copy that cannot be made (disk full) refuses the open: a new version must not change state it has no
//! copy of. Outside a Rampart image (no `IMAGE_VERSION`) nothing is recorded or copied.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
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
    let running = crate::os_release::image_version_if_any();
    open_as_version(path, migrations, min_reader, running.as_deref())
}

/// [`open_with_min_reader`] as image version `running` (None: outside an image).
fn open_as_version(
    path: &Path,
    migrations: &[&str],
    min_reader: u32,
    running: Option<&str>,
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
    if let Some(running) = running {
        snapshot_if_new_version(&conn, path, running)?;
    }
    migrate(&mut conn, path, migrations, min_reader)?;
    Ok(conn)
}

/// Subdirectory of a database's directory holding its copies per version.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Versions whose copies are kept per database directory (the newest by modification time).
pub const KEEP_SNAPSHOTS: usize = 2;

/// Which image version last opened the database (one row; not part of any daemon's schema).
const OPENED_BY: &str = "CREATE TABLE IF NOT EXISTS rampart_opened_by (version TEXT NOT NULL)";

/// The cross-version snapshot (module docs): copy first, then record `running`, so a crash in between copies
/// again at the next open.
fn snapshot_if_new_version(conn: &Connection, path: &Path, running: &str) -> Result<(), Error> {
    let failed = |version: &str, detail: String| Error::DbSnapshot {
        path: path.into(),
        version: version.to_owned(),
        detail,
    };
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'rampart_opened_by'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(path, e))?;
    let last: Option<String> = if exists {
        conn.query_row("SELECT max(version) FROM rampart_opened_by", [], |r| {
            r.get(0)
        })
        .map_err(|e| classify(path, e))?
    } else {
        None
    };
    if last.as_deref() == Some(running) {
        return Ok(());
    }
    if !plain_version(running) {
        return Err(failed(running, "not a plain version name".into()));
    }
    if let Some(last) = &last {
        let dest = snapshot(conn, path, last).map_err(|detail| failed(last, detail))?;
        log::info!(
            "database {} was last opened by version {last}, this is {running}: kept a copy as {last} left it \
             in {}",
            path.display(),
            dest.display()
        );
    }
    let record = |e| classify(path, e);
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {OPENED_BY}; DELETE FROM rampart_opened_by;"
    ))
    .map_err(record)?;
    let done = conn
        .execute(
            "INSERT INTO rampart_opened_by (version) VALUES (?1)",
            [running],
        )
        .and_then(|_| conn.execute_batch("COMMIT"));
    if let Err(e) = done {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(record(e));
    }
    Ok(())
}

/// `VACUUM INTO <dir>/snapshots/<version>/<file>` through a temporary name, synced, renamed; then older
/// versions beyond [`KEEP_SNAPSHOTS`] are removed. Returns the copy's path.
fn snapshot(conn: &Connection, path: &Path, version: &str) -> Result<std::path::PathBuf, String> {
    if !plain_version(version) {
        return Err(format!("{version:?} is not a plain version name"));
    }
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or("the database's file name is not UTF-8")?;
    let root = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(SNAPSHOT_DIR);
    let dir = root.join(version);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{file}.tmp"));
    let dest = dir.join(file);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove {}: {e}", tmp.display())),
    }
    let tmp_str = tmp.to_str().ok_or("the snapshot path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [tmp_str])
        .map_err(|e| format!("VACUUM INTO {tmp_str}: {e}"))?;
    let sync = |p: &Path| fs::File::open(p).and_then(|f| f.sync_all());
    sync(&tmp).map_err(|e| format!("sync {}: {e}", tmp.display()))?;
    fs::rename(&tmp, &dest).map_err(|e| format!("rename to {}: {e}", dest.display()))?;
    sync(&dir).map_err(|e| format!("sync {}: {e}", dir.display()))?;
    prune_snapshots(&root, &dir);
    Ok(dest)
}

/// A version usable as a directory name: `[A-Za-z0-9._+-]`, at most 64, not starting with a dot.
fn plain_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// Removes version directories beyond the newest [`KEEP_SNAPSHOTS`] (never `keep`). Best effort: a leftover
/// copy costs space, not correctness.
fn prune_snapshots(root: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, dir) in dirs.into_iter().skip(KEEP_SNAPSHOTS) {
        if dir != keep {
            if let Err(e) = fs::remove_dir_all(&dir) {
                log::warn!("cannot remove the old snapshot {}: {e}", dir.display());
            }
        }
    }
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

    fn rows(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT x FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn user_version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    fn snapshot_versions(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join(SNAPSHOT_DIR))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_new_version_keeps_a_copy_of_what_the_old_one_left_before_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        // v0.1.0's daemon, still running: its committed rows are in the WAL, not yet in the file.
        let old = open_as_version(&path, &M[..1], 0, Some("0.1.0")).unwrap();
        old.execute("INSERT INTO t (x) VALUES (1), (2)", [])
            .unwrap();
        assert!(
            snapshot_versions(dir.path()).is_empty(),
            "no copy on a first open"
        );

        let new = open_as_version(&path, M, 0, Some("0.2.0")).unwrap();
        assert_eq!(snapshot_versions(dir.path()), ["0.1.0"]);
        let copy_path = dir.path().join("snapshots/0.1.0/a.db");
        let copy = Connection::open(&copy_path).unwrap();
        assert_eq!(rows(&copy), [1, 2], "the WAL's rows are in the copy");
        assert_eq!(user_version(&copy), 1, "copied before the new migration");
        assert_eq!(user_version(&new), 2);
        drop(copy);

        // The same version again: nothing copied twice.
        new.execute("INSERT INTO t (x) VALUES (3)", []).unwrap();
        let before = fs::read(&copy_path).unwrap();
        drop(open_as_version(&path, M, 0, Some("0.2.0")).unwrap());
        assert_eq!(fs::read(&copy_path).unwrap(), before);
        assert_eq!(snapshot_versions(dir.path()), ["0.1.0"]);

        // Fallback to 0.1.0: what 0.2.0 left is kept too, and the old copy is untouched.
        drop((old, new));
        let back = open_as_version(&path, &M[..1], 0, Some("0.1.0")).unwrap();
        assert_eq!(snapshot_versions(dir.path()), ["0.1.0", "0.2.0"]);
        let failed = Connection::open(dir.path().join("snapshots/0.2.0/a.db")).unwrap();
        assert_eq!(rows(&failed), [1, 2, 3]);
        assert_eq!(fs::read(&copy_path).unwrap(), before);
        assert_eq!(
            rows(&back),
            [1, 2, 3],
            "the live database is the one in use"
        );
    }

    #[test]
    fn only_the_newest_versions_copies_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        for v in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
            drop(open_as_version(&path, M, 0, Some(v)).unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(snapshot_versions(dir.path()), ["1.1.0", "1.2.0"]);
    }

    #[test]
    fn outside_an_image_nothing_is_recorded_or_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(open(&path, M).unwrap());
        let conn = open_as_version(&path, M, 0, None).unwrap();
        let tables: u32 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'rampart_opened_by'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        assert!(!dir.path().join(SNAPSHOT_DIR).exists());
    }

    #[test]
    fn a_version_that_is_not_a_plain_name_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(open_as_version(&path, &M[..1], 0, Some("0.1.0")).unwrap());
        let err = open_as_version(&path, M, 0, Some("../../x")).unwrap_err();
        assert!(matches!(err, Error::DbSnapshot { .. }), "{err}");
        let conn = open_as_version(&path, &M[..1], 0, None).unwrap();
        assert_eq!(user_version(&conn), 1, "not migrated");
        let last: String = conn
            .query_row("SELECT version FROM rampart_opened_by", [], |r| r.get(0))
            .unwrap();
        assert_eq!(last, "0.1.0");
        // Refused before any copy: nothing was written, inside the snapshot directory or outside it.
        assert!(snapshot_versions(dir.path()).is_empty());
        assert!(!dir.path().parent().unwrap().join("x").exists());
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
