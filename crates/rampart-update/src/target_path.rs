//! Target names: what a targets file may call a file, before anyone joins it onto a directory.
//!
//! A name is one or more `/`-separated components, each non-empty, not `.` or `..`, without backslash or NUL,
//! and the whole not starting with `/`. Checked once at parse time for every target, so a hostile name refuses
//! the whole targets metadata (TUF's rule) instead of depending on each caller's care.

use crate::Error;

/// Longest name accepted; real ones are a few dozen bytes.
const MAX_LEN: usize = 255;

pub fn check(path: &str) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::TargetPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("empty");
    }
    if path.len() > MAX_LEN {
        return refuse("longer than 255 bytes");
    }
    if path.contains('\0') {
        return refuse("contains NUL");
    }
    if path.contains('\\') {
        return refuse("contains a backslash");
    }
    if path.starts_with('/') {
        return refuse("absolute");
    }
    for component in path.split('/') {
        match component {
            "" => return refuse("empty component"),
            "." | ".." => return refuse("dot component"),
            c if c.chars().any(char::is_control) => return refuse("control character"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in ["rootfs.erofs.zst", "vmlinuz", "a/b.c", "x..y"] {
            check(ok).unwrap();
        }
    }

    #[test]
    fn escaping_names_are_refused() {
        for (bad, reason) in [
            ("/etc/passwd", "absolute"),
            ("../x", "dot component"),
            ("a/../../x", "dot component"),
            ("a/./x", "dot component"),
            ("a\\..\\x", "contains a backslash"),
            ("a//x", "empty component"),
            ("a/", "empty component"),
            ("", "empty"),
            ("a\0b", "contains NUL"),
            ("a\nb", "control character"),
        ] {
            match check(bad) {
                Err(Error::TargetPath { reason: r, .. }) => assert_eq!(r, reason, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
