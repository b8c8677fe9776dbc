//! Arbitrary bytes as an sshd message, as a journalctl JSON line, and as panel fields: the parser never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_common::journal::Entry;
use rampart_guardd::parse;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse::parse_sshd(&text, Some(1));
    if let Ok(entry) = Entry::from_json(&text) {
        let _ = parse::parse(&entry);
    }
    // Split into fields: the first byte picks the shape, the rest fills the values.
    let mut parts = text.splitn(4, '\u{1f}');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut entry = Entry::default();
    for (k, v) in [
        ("MESSAGE_ID", a),
        ("RAMPART_AUTH_SERVICE", "panel"),
        ("RAMPART_AUTH_RESULT", b),
        ("RAMPART_REMOTE_ADDR", c),
        ("RAMPART_AUTH_SESSION", a),
        ("SYSLOG_IDENTIFIER", "sshd"),
        ("MESSAGE", c),
        ("SYSLOG_PID", b),
    ] {
        entry.fields.insert(k.to_owned(), v.to_owned());
    }
    let _ = parse::parse(&entry);
});
