//! Following the systemd journal: structured entries (unit, PID, message and every other field), never log files.
//!
//! [`Follower`] runs `journalctl --follow --output=json --all` through [`crate::exec::Program`] and parses one JSON
//! object per line. journalctl already handles rotation, vacuuming, new journal files and access rights; we only
//! read its stdout. Each [`Entry`] carries its `__CURSOR`; a daemon stores the cursor of the last entry it fully
//! handled in a [`CursorFile`] and passes it back as [`FollowOptions::after_cursor`] on the next start, so no line
//! is handled twice and none is skipped across restarts. Without a cursor the follower starts at the end of the
//! journal (`--since=@<now>`): old history is never replayed on a first start.
//!
//! Latency: journald tells readers about new entries through inotify, coalesced by a 250 ms timer (systemd 252's
//! `POST_CHANGE_TIMER_INTERVAL_USEC`), so any journal reader — this one, fail2ban's, `journalctl -f` — sees an
//! entry 0–250 ms after it was logged.
//!
//! If journalctl exits (journal directory replaced, a crash, OOM), [`Follower::next`] restarts it after the last
//! cursor it returned, with a growing pause, and gives up with [`Error::JournalExited`] only after several restarts
//! in a row that produced no entry. A cursor journalctl refuses (a journal wiped since) is dropped once, with a
//! warning, in favour of the end of the journal.
//!
//! Rejected: linking libsystemd (`sd-journal`) — unsafe FFI in every daemon and a C library on the parsing path —
//! and reading the journal file format ourselves (undocumented-enough, and rotation/compression are subtle).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};

use crate::exec::Program;
use crate::Error;

/// Where Debian's journalctl lives (merged /usr).
pub const JOURNALCTL: &str = "/usr/bin/journalctl";
/// Longest JSON line kept; longer entries are skipped whole (journald's own line limit is 48 KiB per message).
pub const MAX_LINE: usize = 1024 * 1024;
/// Consecutive journalctl exits without a single entry before [`Follower::next`] reports an error.
const MAX_RESTARTS: u32 = 5;

/// What to follow.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// journalctl matches, e.g. `SYSLOG_IDENTIFIER=sshd`; different fields AND, same field OR, `+` separates
    /// alternatives (see journalctl(1)). Empty follows everything.
    pub matches: Vec<String>,
    /// Resume after this cursor; `None` starts at the end of the journal.
    pub after_cursor: Option<String>,
    /// The journalctl binary (tests may point elsewhere).
    pub journalctl: &'static str,
    /// Read journal files from this directory instead of the system's (tests).
    pub directory: Option<PathBuf>,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            matches: Vec::new(),
            after_cursor: None,
            journalctl: JOURNALCTL,
            directory: None,
        }
    }
}

/// One journal entry. Field values that are not valid UTF-8 (journalctl prints them as byte arrays) are decoded
/// lossily; a field with several values keeps the first, as `sd_journal_get_data` does.
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

    /// Parses one line of `journalctl --output=json`. Never panics; a line without `__CURSOR` is an error.
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

/// A running `journalctl --follow`, restarted after its last cursor if it exits.
#[derive(Debug)]
pub struct Follower {
    options: FollowOptions,
    program: Program,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<String>>,
    /// Cursor of the last entry returned: where a restart resumes.
    last_cursor: Option<String>,
    entries_since_spawn: u64,
    restarts: u32,
    line: Vec<u8>,
}

impl Follower {
    /// Validates the options and starts journalctl.
    pub fn spawn(options: &FollowOptions) -> Result<Follower, Error> {
        for m in &options.matches {
            validate_match(m)?;
        }
        if let Some(c) = &options.after_cursor {
            if !valid_cursor(c) {
                return Err(Error::JournalCursor(c.clone()));
            }
        }
        let program = Program::new(options.journalctl)?;
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let (child, stdout) = start(
            &program,
            options,
            options.after_cursor.as_deref(),
            &stderr_tail,
        )?;
        Ok(Follower {
            options: options.clone(),
            program,
            child,
            stdout,
            stderr_tail,
            last_cursor: options.after_cursor.clone(),
            entries_since_spawn: 0,
            restarts: 0,
            line: Vec::with_capacity(4096),
        })
    }

    /// The next entry. Waits for one to be written; `Ok(None)` never happens while journalctl can be (re)started,
    /// it is kept for callers that treat the stream as finite. Cancel-safe only between entries: drop the future
    /// only when stopping.
    pub async fn next(&mut self) -> Result<Option<Entry>, Error> {
        loop {
            match read_line(&mut self.stdout, &mut self.line, MAX_LINE).await {
                Ok(Line::Complete) => {
                    let text = String::from_utf8_lossy(&self.line);
                    match Entry::from_json(&text) {
                        Ok(entry) => {
                            self.last_cursor = Some(entry.cursor.clone());
                            self.entries_since_spawn += 1;
                            self.restarts = 0;
                            return Ok(Some(entry));
                        }
                        Err(why) => log::warn!("skipping a journal line journalctl printed: {why}"),
                    }
                }
                Ok(Line::TooLong) => {
                    log::warn!("skipping a journal entry longer than {MAX_LINE} bytes")
                }
                Ok(Line::Eof) => self.restart().await?,
                Err(source) => return Err(Error::JournalRead(source)),
            }
        }
    }

    /// The cursor of the last entry [`Follower::next`] returned (or the one it resumed after).
    pub fn cursor(&self) -> Option<&str> {
        self.last_cursor.as_deref()
    }

    async fn restart(&mut self) -> Result<(), Error> {
        let status = self.child.wait().await.map_err(Error::JournalRead)?;
        let stderr = self.stderr_text();
        let produced = self.entries_since_spawn > 0;
        if !produced {
            self.restarts += 1;
        }
        if self.restarts > MAX_RESTARTS {
            return Err(Error::JournalExited {
                status: status_text(status),
                stderr,
            });
        }
        if !produced && !status.success() && self.last_cursor.is_some() && self.restarts >= 2 {
            log::warn!(
                "journalctl keeps failing after cursor {:?} ({stderr}); continuing from the end of the journal",
                self.last_cursor
            );
            self.last_cursor = None;
        } else {
            log::warn!(
                "journalctl exited ({}): {stderr}; restarting",
                status_text(status)
            );
        }
        let pause = Duration::from_millis(100u64 << self.restarts.min(6));
        tokio::time::sleep(pause).await;
        let (child, stdout) = start(
            &self.program,
            &self.options,
            self.last_cursor.as_deref(),
            &self.stderr_tail,
        )?;
        self.child = child;
        self.stdout = stdout;
        self.entries_since_spawn = 0;
        Ok(())
    }

    fn stderr_text(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

fn status_text(status: ExitStatus) -> String {
    status.to_string()
}

fn start(
    program: &Program,
    options: &FollowOptions,
    after_cursor: Option<&str>,
    stderr_tail: &Arc<Mutex<String>>,
) -> Result<(Child, BufReader<ChildStdout>), Error> {
    let mut flags: Vec<String> = vec![
        "--follow".into(),
        "--output=json".into(),
        "--all".into(),
        "--no-pager".into(),
        "--quiet".into(),
    ];
    match after_cursor {
        Some(c) => flags.push(format!("--after-cursor={c}")),
        // Not `--lines=0`: journalctl resolves "the tail" lazily at its first wake-up, so entries written between
        // its start and that wake-up (up to journald's 250 ms change-notification delay) would be skipped.
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            flags.push(format!(
                "--since=@{}.{:06}",
                now.as_secs(),
                now.subsec_micros()
            ));
        }
    }
    if let Some(dir) = &options.directory {
        flags.push(format!("--directory={}", dir.display()));
    }
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operands: Vec<&str> = options.matches.iter().map(String::as_str).collect();
    let mut cmd = tokio::process::Command::from(program.command(&flag_refs, &operands));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawn_err = |source| Error::ExecSpawn {
        program: program.path().to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| spawn_err(std::io::Error::other("no stdout pipe")))?;
    if let Some(stderr) = child.stderr.take() {
        let tail = Arc::clone(stderr_tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log::debug!("journalctl: {line}");
                if let Ok(mut t) = tail.lock() {
                    t.clear();
                    t.extend(line.chars().take(1024));
                }
            }
        });
    }
    Ok((child, BufReader::with_capacity(64 * 1024, stdout)))
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads up to and without the next `\n` into `buf`, never holding more than `max` bytes: a longer line is
/// consumed and reported as [`Line::TooLong`]. A partial last line at EOF is dropped (journalctl died mid-write).
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
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

    #[tokio::test]
    async fn long_lines_are_skipped_whole() {
        let data = b"short\n0123456789abcdef\nend\npartial".to_vec();
        let mut reader = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf, 8).await.unwrap() {
                Line::Complete => got.push(String::from_utf8_lossy(&buf).into_owned()),
                Line::TooLong => got.push("<too long>".into()),
                Line::Eof => break,
            }
        }
        assert_eq!(got, ["short", "<too long>", "end"]);
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
