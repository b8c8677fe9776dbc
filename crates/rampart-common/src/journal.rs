//! Following the systemd journal: structured entries (unit, PID, message and every other field), never log files.
//!
//! [`Follower`] reads the journal files with libsystemd's sd-journal (the `systemd` crate) on a thread of its own
//! and hands each [`Entry`] to async code through a bounded channel. Each entry carries its cursor; a daemon stores
//! the cursor of the last entry it fully handled in a [`CursorFile`] and passes it back as
//! [`FollowOptions::after_cursor`] on the next start, so no line is handled twice and none is skipped across
//! restarts. Without a cursor the follower starts at the time it was spawned: old history is never replayed.
//!
//! **Latency.** journald tells inotify readers about new entries on a coalescing timer (250 ms in systemd 252), and
//! measured end to end a waiting reader (`journalctl --follow`, `sd_journal_wait` alone) sees an entry 250–450 ms
//! after it was written. The entries themselves are in the shared, mmap'ed file at once, so the reader thread also
//! polls every [`POLL`] (10 ms): a brute-force line reaches the guard within milliseconds, which a ban needs.
//! `sd_journal_wait` between polls still processes inotify events, so rotated and new files are picked up.
//!
//! Rejected: running `journalctl --follow --output=json` (the first version: 250–450 ms late, JSON formatting
//! capped throughput, and in a sandbox with ProtectControlGroups= it printed nothing at all), and reading the journal
//! file format ourselves (rotation, compression and the on-disk format are sd-journal's job).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use systemd::journal::{Journal, OpenDirectoryOptions, OpenOptions};
use tokio::sync::mpsc;

use crate::Error;

/// How often the reader thread looks for new entries when the journal is quiet (see the module docs).
pub const POLL: Duration = Duration::from_millis(10);
/// Entries read ahead of the consumer; the reader thread waits when the consumer is this far behind.
const QUEUE: usize = 4096;

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct FollowOptions {
    /// journalctl matches, e.g. `SYSLOG_IDENTIFIER=sshd`; different fields AND, same field OR, `+` separates
    /// alternatives (see journalctl(1)). Empty follows everything.
    pub matches: Vec<String>,
    /// Resume after this cursor; `None` starts at the end of the journal.
    pub after_cursor: Option<String>,
    /// Read journal files from this directory instead of the system's (tests).
    pub directory: Option<PathBuf>,
}

/// One journal entry. Field values that are not valid UTF-8 are decoded lossily; a field with several values keeps
/// the first, as `sd_journal_get_data` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: microseconds since the Unix epoch when journald received the entry.
    pub realtime_us: u64,
    pub fields: HashMap<String, String>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// `MESSAGE`.
    pub fn message(&self) -> Option<&str> {
        self.field("MESSAGE")
    }

    /// `SYSLOG_IDENTIFIER` (e.g. `sshd`). Chosen by the sender: trust it only together with a trusted field such
    /// as `_UID` or `_SYSTEMD_UNIT`.
    pub fn identifier(&self) -> Option<&str> {
        self.field("SYSLOG_IDENTIFIER")
    }

    /// The process that logged: `SYSLOG_PID` when the sender gave one (syslog lines, which journald parses from
    /// `name[pid]:`), else journald's trusted `_PID`.
    pub fn pid(&self) -> Option<u32> {
        self.field("SYSLOG_PID")
            .or_else(|| self.field("_PID"))
            .and_then(|p| p.parse().ok())
    }

    /// `_SYSTEMD_UNIT` (trusted: journald derives it from the sender's cgroup).
    pub fn unit(&self) -> Option<&str> {
        self.field("_SYSTEMD_UNIT")
    }

    /// `_UID` (trusted).
    pub fn uid(&self) -> Option<u32> {
        self.field("_UID").and_then(|u| u.parse().ok())
    }

    /// Parses one line of `journalctl --output=json` (tools and tests that hold exported entries). Never panics; a
    /// line without `__CURSOR` is an error.
    pub fn from_json(line: &str) -> Result<Entry, String> {
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut fields = HashMap::with_capacity(object.len());
        for (name, value) in object {
            if let Some(text) = field_text(value) {
                fields.insert(name, text);
            }
        }
        let cursor = fields
            .remove("__CURSOR")
            .ok_or_else(|| "entry has no __CURSOR".to_owned())?;
        let realtime_us = fields
            .get("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(Entry {
            cursor,
            realtime_us,
            fields,
        })
    }
}

/// A JSON field value as text: strings as they are, byte arrays decoded lossily, multi-valued fields by their
/// first value; `null` (a field journalctl chose not to print) is dropped.
fn field_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => {
            if items.iter().all(|v| v.is_u64()) {
                let bytes: Vec<u8> = items
                    .iter()
                    .filter_map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                items.into_iter().find_map(field_text)
            }
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) => None,
    }
}

/// Checks a journalctl match: `+`, or `FIELD=value` with a field name journald accepts (upper-case letters,
/// digits, `_`, not starting with a digit).
pub fn validate_match(m: &str) -> Result<(), Error> {
    if m == "+" {
        return Ok(());
    }
    let bad = || Error::JournalMatch(m.to_owned());
    let (name, value) = m.split_once('=').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !name_ok || value.contains(['\n', '\0']) {
        return Err(bad());
    }
    Ok(())
}

/// A cursor is opaque printable ASCII (`s=…;i=…;b=…;m=…;t=…;x=…`); anything else is refused before it reaches argv.
pub fn valid_cursor(cursor: &str) -> bool {
    !cursor.is_empty() && cursor.len() <= 512 && cursor.bytes().all(|b| b.is_ascii_graphic())
}

/// A journal reader thread feeding entries to async code. Dropping it stops the thread.
#[derive(Debug)]
pub struct Follower {
    entries: mpsc::Receiver<Result<Entry, Error>>,
    stop: Arc<AtomicBool>,
    /// Cursor of the last entry returned (or the one resumed after).
    last_cursor: Option<String>,
}

impl Follower {
    /// Validates the options, opens the journal and positions it (after the cursor, or at the current time), then
    /// starts the reader thread. Errors opening or positioning are returned here, not later.
    pub fn spawn(options: &FollowOptions) -> Result<Follower, Error> {
        for m in &options.matches {
            validate_match(m)?;
        }
        if let Some(c) = &options.after_cursor {
            if !valid_cursor(c) {
                return Err(Error::JournalCursor(c.clone()));
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let reader_stop = Arc::clone(&stop);
        let reader_options = options.clone();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let (journal, on_first) = match open(&reader_options) {
                    Ok(opened) => {
                        let _ = opened_tx.send(Ok(()));
                        opened
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                read_loop(journal, on_first, &tx, &reader_stop);
            })
            .map_err(Error::JournalOpen)?;
        opened_rx
            .recv()
            .map_err(|_| Error::JournalOpen(std::io::Error::other("the reader thread ended")))??;
        Ok(Follower {
            entries: rx,
            stop,
            last_cursor: options.after_cursor.clone(),
        })
    }

    /// The next entry; waits for one to be written. `Ok(None)` only after the reader thread stopped (it does not
    /// on its own). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Entry>, Error> {
        match self.entries.recv().await {
            Some(Ok(entry)) => {
                self.last_cursor = Some(entry.cursor.clone());
                Ok(Some(entry))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// The cursor of the last entry [`Follower::next`] returned (or the one it resumed after).
    pub fn cursor(&self) -> Option<&str> {
        self.last_cursor.as_deref()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the system journal (or a directory), adds the matches and seeks: after the cursor, or to now. The flag
/// is true when the reader already stands on the first entry to hand out (the cursor's own entry was vacuumed).
fn open(options: &FollowOptions) -> Result<(Journal, bool), Error> {
    let mut journal = match &options.directory {
        Some(dir) => OpenDirectoryOptions::default()
            .open_directory(dir.as_os_str().as_encoded_bytes())
            .map_err(open_err)?,
        None => OpenOptions::default()
            .system(true)
            .local_only(true)
            .open()
            .map_err(open_err)?,
    };
    for m in &options.matches {
        if m == "+" {
            journal.match_or().map_err(open_err)?;
        } else if let Some((field, value)) = m.split_once('=') {
            journal
                .match_add(field, value.as_bytes())
                .map_err(open_err)?;
        }
    }
    let mut on_first = false;
    match &options.after_cursor {
        Some(cursor) => {
            journal.seek_cursor(cursor.as_str()).map_err(open_err)?;
            // Seeking puts the reader *before* the cursor's entry: step onto it. If it is still there the next read
            // starts after it; if it was vacuumed we now stand on the first later entry, which is handed out as is
            // (stepping back from the oldest entry would not move, and the next read would skip it).
            if journal.next().map_err(read_err)? > 0
                && !journal.test_cursor(cursor.as_str()).map_err(read_err)?
            {
                on_first = true;
            }
        }
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
            journal.seek_realtime_usec(now_us).map_err(open_err)?;
        }
    }
    Ok((journal, on_first))
}

/// Reads entries until `stop` is set or the consumer is gone; a read error is sent once, then the thread ends.
fn read_loop(
    mut journal: Journal,
    mut on_first: bool,
    tx: &mpsc::Sender<Result<Entry, Error>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let read = if std::mem::take(&mut on_first) {
            current(&mut journal).map(Some)
        } else {
            read_one(&mut journal)
        };
        match read {
            Ok(Some(entry)) => {
                if tx.blocking_send(Ok(entry)).is_err() {
                    return;
                }
            }
            Ok(None) => {
                if let Err(e) = journal.wait(Some(POLL)) {
                    let _ = tx.blocking_send(Err(read_err(e)));
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

fn read_one(journal: &mut Journal) -> Result<Option<Entry>, Error> {
    if journal.next().map_err(read_err)? == 0 {
        return Ok(None);
    }
    current(journal).map(Some)
}

/// The entry the reader stands on. Values are decoded lossily; of a repeated field the first value is kept.
fn current(journal: &mut Journal) -> Result<Entry, Error> {
    let mut fields = HashMap::new();
    journal.restart_data();
    while let Some(field) = journal.enumerate_data().map_err(read_err)? {
        let name = String::from_utf8_lossy(field.name()).into_owned();
        let value = String::from_utf8_lossy(field.value().unwrap_or_default()).into_owned();
        fields.entry(name).or_insert(value);
    }
    Ok(Entry {
        cursor: journal.cursor().map_err(read_err)?,
        realtime_us: journal.timestamp_usec().map_err(read_err)?,
        fields,
    })
}

fn open_err(e: systemd::Error) -> Error {
    Error::JournalOpen(e.into())
}

fn read_err(e: systemd::Error) -> Error {
    Error::JournalRead(e.into())
}

/// The saved cursor of a follower, for resuming after a restart.
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    pub fn new(path: impl Into<PathBuf>) -> CursorFile {
        CursorFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved cursor; `None` when there is no file yet. A file holding something that is not a cursor is an
    /// error naming the file (move it aside to start from the end of the journal).
    pub fn load(&self) -> Result<Option<String>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::CursorRead {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let cursor = text.trim();
        if cursor.is_empty() {
            return Ok(None);
        }
        if !valid_cursor(cursor) {
            return Err(Error::CursorInvalid {
                path: self.path.clone(),
            });
        }
        Ok(Some(cursor.to_owned()))
    }

    /// Saves atomically: write a temporary file beside it, fsync, rename over, fsync the directory.
    pub fn save(&self, cursor: &str) -> Result<(), Error> {
        let err = |source| Error::CursorWrite {
            path: self.path.clone(),
            source,
        };
        if !valid_cursor(cursor) {
            return Err(err(std::io::Error::other("not a journal cursor")));
        }
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(cursor.as_bytes()).map_err(err)?;
        file.write_all(b"\n").map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"__CURSOR":"s=fba4;i=3;b=1996;m=245a;t=660f;x=abd3","_COMM":"sshd","SYSLOG_IDENTIFIER":"sshd","_UID":"0","MESSAGE":"Failed password for root from 203.0.113.9 port 1234 ssh2","SYSLOG_PID":"777","_PID":"31248","__REALTIME_TIMESTAMP":"1795502239900227","_SYSTEMD_UNIT":"ssh.service"}"#;

    #[test]
    fn parses_journalctl_json() {
        let e = Entry::from_json(LINE).unwrap();
        assert_eq!(e.cursor, "s=fba4;i=3;b=1996;m=245a;t=660f;x=abd3");
        assert_eq!(e.realtime_us, 1_795_502_239_900_227);
        assert_eq!(
            e.message(),
            Some("Failed password for root from 203.0.113.9 port 1234 ssh2")
        );
        assert_eq!(e.identifier(), Some("sshd"));
        assert_eq!(e.pid(), Some(777), "SYSLOG_PID wins over _PID");
        assert_eq!(e.unit(), Some("ssh.service"));
        assert_eq!(e.uid(), Some(0));
        assert!(!e.fields.contains_key("__CURSOR"));
    }

    #[test]
    fn binary_multi_valued_and_odd_fields_never_panic() {
        let line = r#"{"__CURSOR":"c","MESSAGE":[104,105,255],"MULTI":["a","b"],"NESTED":[[120],[121]],"N":null,"NUM":5,"HUGE":[300,1],"O":{"x":1},"_PID":"x"}"#;
        let e = Entry::from_json(line).unwrap();
        assert_eq!(e.message(), Some("hi\u{fffd}"));
        assert_eq!(e.field("MULTI"), Some("a"));
        assert_eq!(e.field("NESTED"), Some("x"));
        assert_eq!(e.field("N"), None);
        assert_eq!(e.field("NUM"), Some("5"));
        assert_eq!(e.field("O"), None);
        assert_eq!(e.pid(), None);
        assert_eq!(e.realtime_us, 0);
        assert!(e.field("HUGE").is_some());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for line in [
            "",
            "[]",
            "null",
            "{",
            "{\"MESSAGE\":\"no cursor\"}",
            "\u{0}\u{1}",
        ] {
            assert!(Entry::from_json(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn matches_and_cursors_are_checked() {
        for ok in [
            "SYSLOG_IDENTIFIER=sshd",
            "+",
            "_SYSTEMD_UNIT=ssh.service",
            "MESSAGE_ID=",
        ] {
            assert!(validate_match(ok).is_ok(), "{ok}");
        }
        for bad in ["sshd", "lower=x", "=x", "--all", "-D=/", "1A=x", "A=x\ny"] {
            assert!(validate_match(bad).is_err(), "{bad}");
        }
        assert!(valid_cursor("s=1;i=2"));
        assert!(!valid_cursor(""));
        assert!(!valid_cursor("a b"));
        assert!(!valid_cursor("a\nb"));
    }

    #[test]
    fn cursor_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = CursorFile::new(dir.path().join("cursor"));
        assert_eq!(file.load().unwrap(), None);
        file.save("s=1;i=2").unwrap();
        assert_eq!(file.load().unwrap().as_deref(), Some("s=1;i=2"));
        file.save("s=1;i=3").unwrap();
        assert_eq!(file.load().unwrap().as_deref(), Some("s=1;i=3"));
        std::fs::write(file.path(), "not a cursor\n").unwrap();
        assert!(matches!(file.load(), Err(Error::CursorInvalid { .. })));
        assert!(file.save("bad cursor").is_err());
    }
}
