//! Before the switch: a copy of the daemons' state under `/var/lib/rampart` (configurable), named after the
//! version that is running, so that falling back to the old slot can also go back to the old data if a new
//! version's first run changed it in a way the old one cannot use.
//!
//! `*.db` files are copied with SQLite's online backup API (rusqlite `backup`), which reads a consistent
//! snapshot even while a daemon writes the database in WAL mode; the `-wal`/`-shm`/`-journal` files beside them
//! are not copied (the backup already contains their committed content, and a loose WAL copy could be torn).
//! Other files are copied byte for byte with their permission bits and fsynced. Symlinks and special files are
//! skipped (state there is not ours to follow). The snapshot is built in `.<version>.tmp` and renamed into place,
//! so a snapshot named after a version is always complete; a rerun replaces it.
//!
//! Schema rule for rollback (`rampart_common::db`): a migration may only add tables, columns with defaults, or
//! indexes, and the *old* version then opens the database the new one migrated as it is (its `user_version` is
//! higher, but every table and column it knows is still there; the old version never migrates down). So a
//! rollback keeps the live data, and the snapshot is the last resort, restored by hand, for a new version that
//! damaged data rather than merely extended it, or whose schema says older readers must not use it
//! (`db::open_with_min_reader`: the old daemon then refuses the database and names the snapshot).
//!
//! The daemons' own databases live in their state directories (`/var/lib/rampart-<daemon>`, owned by each
//! daemon's user, mode 0700), which this daemon, running without CAP_DAC_READ_SEARCH, cannot read. They are not
//! copied here: each daemon keeps a copy of its databases as the previous version left them, made when a new
//! version first opens them, before any migration (`rampart_common::db`, "Snapshots across versions").

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::io;
use crate::state::sync_dir;
use crate::Error;

/// Copies `source` into `<dest_root>/<name>`; returns the snapshot's path. `dest_root` may lie under `source`
/// (it is skipped), and so are the directories in `skip` (the updater's own journal: restoring it would
/// rewind the update state, including the never-retry set).
pub fn snapshot(
    source: &Path,
    dest_root: &Path,
    name: &str,
    skip: &[&Path],
) -> Result<PathBuf, Error> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(Error::Invalid {
            what: "snapshot name",
            value: name.to_owned(),
            reason: "must be a plain file name",
        });
    }
    fs::create_dir_all(dest_root).map_err(io("create", dest_root))?;
    fs::set_permissions(dest_root, fs::Permissions::from_mode(0o700))
        .map_err(io("restrict", dest_root))?;
    let tmp = dest_root.join(format!(".{name}.tmp"));
    remove_if_exists(&tmp)?;
    fs::create_dir(&tmp).map_err(io("create", &tmp))?;
    let mut skipped = vec![fs::canonicalize(dest_root).map_err(io("resolve", dest_root))?];
    skipped.extend(skip.iter().filter_map(|p| fs::canonicalize(p).ok()));
    if source.exists() {
        copy_tree(source, &tmp, &skipped)?;
    }
    let dest = dest_root.join(name);
    remove_if_exists(&dest)?;
    fs::rename(&tmp, &dest).map_err(io("rename into place", &dest))?;
    sync_dir(dest_root)?;
    Ok(dest)
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path)(e)),
    }
}

fn is_sqlite_sidecar(name: &str) -> bool {
    [".db-wal", ".db-shm", ".db-journal"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> Result<(), Error> {
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(io("list", from))?
        .collect::<Result<_, _>>()
        .map_err(io("list", from))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let target = to.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io("stat", &path))?;
        if meta.is_dir() {
            if skip.contains(&fs::canonicalize(&path).map_err(io("resolve", &path))?) {
                continue;
            }
            fs::create_dir(&target).map_err(io("create", &target))?;
            copy_tree(&path, &target, skip)?;
            fs::set_permissions(&target, meta.permissions()).map_err(io("chmod", &target))?;
        } else if meta.is_file() {
            let text = name.to_string_lossy();
            if is_sqlite_sidecar(&text) {
                continue;
            }
            if text.ends_with(".db") {
                backup_db(&path, &target)?;
            } else {
                fs::copy(&path, &target).map_err(io("copy", &path))?;
            }
            fs::set_permissions(&target, meta.permissions()).map_err(io("chmod", &target))?;
            File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io("sync", &target))?;
        }
    }
    sync_dir(to)
}

/// SQLite's online backup: a consistent copy of a live database (WAL included), page by page.
pub fn backup_db(from: &Path, to: &Path) -> Result<(), Error> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Backup { path, source }
    };
    let src =
        Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err(from))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(err(from))?;
    let mut dst = Connection::open(to).map_err(err(to))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(err(from))?;
        backup
            .run_to_completion(256, Duration::from_millis(10), None)
            .map_err(err(from))?;
    }
    dst.close().map_err(|(_, e)| err(to)(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_wal_database_and_files_are_copied_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib/rampart");
        fs::create_dir_all(lib.join("ssh")).unwrap();
        fs::write(lib.join("ssh/host_key"), b"secret").unwrap();
        fs::set_permissions(lib.join("ssh/host_key"), fs::Permissions::from_mode(0o600)).unwrap();
        let db = lib.join("keys.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE k(v TEXT); INSERT INTO k VALUES ('a'), ('b');")
            .unwrap();
        // The rows are only in the WAL now; a plain file copy of keys.db would miss them.
        assert!(lib.join("keys.db-wal").exists());
        // Snapshots live under the copied tree and must not copy themselves.
        let snaps = lib.join("snapshots");
        fs::create_dir_all(lib.join("updated")).unwrap();
        fs::write(lib.join("updated/journal.json"), b"{}").unwrap();
        let out = snapshot(&lib, &snaps, "0.1.0", &[&lib.join("updated")]).unwrap();
        assert!(!out.join("updated").exists());
        assert_eq!(out, snaps.join("0.1.0"));
        assert!(!out.join("keys.db-wal").exists());
        let copy = Connection::open(out.join("keys.db")).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM k", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        drop(copy);
        assert_eq!(fs::read(out.join("ssh/host_key")).unwrap(), b"secret");
        let mode = fs::metadata(out.join("ssh/host_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!out.join("snapshots").exists());
        // A rerun (resume) replaces it; a leftover temp dir is cleared.
        fs::create_dir(snaps.join(".0.1.0.tmp")).unwrap();
        snapshot(&lib, &snaps, "0.1.0", &[]).unwrap();
        assert!(!snaps.join(".0.1.0.tmp").exists());
        drop(conn);
        assert!(snapshot(&lib, &snaps, "../x", &[]).is_err());
    }
}
