//! Following sshd's log: each accepted public-key login updates its key's last use and, with the local port the
//! connection arrived on, the evidence a port change is confirmed with (see [`crate::port_change`]).
//!
//! Sources: a file that `sshd -E` appends to (tests, or a machine without journald), read from its end at
//! start-up; or the journal (production). The line parsing is [`crate::sshd_log`].

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_common::journal::{CursorFile, FollowOptions, Follower};
use rusqlite::Connection;

use crate::error::Error;
use crate::port_change::now;
use crate::sshd_log::{self, Correlator};
use crate::store;

/// Turns log messages into database updates.
#[derive(Debug)]
pub struct Recorder {
    db: Arc<Mutex<Connection>>,
    correlator: Correlator,
}

impl Recorder {
    pub fn new(db: Arc<Mutex<Connection>>) -> Recorder {
        Recorder {
            db,
            correlator: Correlator::default(),
        }
    }

    /// Handles one sshd message logged at `at` (Unix seconds).
    pub fn feed(&mut self, message: &str, at: u64) {
        let Some(event) = sshd_log::parse(message) else {
            return;
        };
        let Some(login) = self.correlator.feed(event) else {
            return;
        };
        log::debug!(
            "login by {} with {} on port {:?}",
            login.user,
            login.fingerprint,
            login.local_port
        );
        let result = match self.db.lock() {
            Ok(db) => tokio::task::block_in_place(|| {
                store::record_login(&db, &login.user, &login.fingerprint, login.local_port, at)
            }),
            Err(_) => Err(Error::Task("the database lock is poisoned".into())),
        };
        if let Err(e) = result {
            log::error!(
                "cannot record a login: {}",
                rampart_common::error::chain(&e)
            );
        }
    }
}

/// Follows `path` from its current end, line by line, until the task is dropped. A file that is replaced or
/// truncated is read again from its start.
pub async fn follow_file(path: PathBuf, mut recorder: Recorder) -> Result<(), Error> {
    let open = |path: &PathBuf| {
        std::fs::File::open(path)
            .map_err(|e| Error::Log(format!("cannot open {}: {e}", path.display())))
    };
    let mut file = open(&path)?;
    let mut offset = file
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::Log(e.to_string()))?;
    let mut pending = Vec::new();
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            file = open(&path)?;
            offset = 0;
            pending.clear();
        }
        let mut chunk = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::Log(e.to_string()))?;
        let n = (&mut file)
            .take(1 << 20)
            .read_to_end(&mut chunk)
            .map_err(|e| Error::Log(e.to_string()))?;
        offset += n as u64;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            recorder.feed(&String::from_utf8_lossy(&line), now());
        }
        if pending.len() > 64 * 1024 {
            pending.clear(); // a line this long is not sshd's
        }
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Follows sshd's entries in the journal (`SYSLOG_IDENTIFIER=sshd`) until the task is dropped, resuming after the
/// cursor saved beside the database (`journal.cursor`) so a restart neither misses nor replays a login; the first
/// start begins at the end of the journal.
pub async fn follow_journal(database: PathBuf, mut recorder: Recorder) -> Result<(), Error> {
    let cursor_file = CursorFile::new(database.with_file_name("journal.cursor"));
    let options = FollowOptions {
        // `_UID=0`: journald's own field, so a tenant running `logger -t sshd` cannot forge a login (the lines
        // used here come from sshd's privileged monitor process).
        matches: vec!["SYSLOG_IDENTIFIER=sshd".to_owned(), "_UID=0".to_owned()],
        after_cursor: cursor_file.load()?,
        ..FollowOptions::default()
    };
    let mut follower = Follower::spawn(&options)?;
    let mut saved = std::time::Instant::now();
    while let Some(entry) = follower.next().await? {
        if let Some(message) = entry.message() {
            recorder.feed(message, entry.realtime_us / 1_000_000);
        }
        // At most once a second (a brute-force run writes many lines); a restart re-reads at most that second,
        // which only records a last use again.
        if saved.elapsed() >= Duration::from_secs(1) {
            cursor_file.save(&entry.cursor)?;
            saved = std::time::Instant::now();
        }
    }
    Ok(())
}
