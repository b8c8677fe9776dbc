//! Parsing what callers send — SSH public key lines and user names — into checked values, at the boundary.
//!
//! A key line must be exactly `<type> <base64> [comment]`. Anything sshd would read as options (`command=`,
//! `from=`, `environment=`…) never reaches sshd: the stored line is re-encoded from the parsed key, and the comment
//! is kept apart from it. Parsing is RustCrypto's `ssh-key`, which also checks that the base64 blob holds a key of
//! the type the line names.

use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, PublicKey};

/// Smallest RSA modulus accepted (NIST SP 800-57: 3072 bits for security beyond 2030).
pub const MIN_RSA_BITS: u32 = 3072;
/// Longest key line accepted (an RSA-16384 key is about 2.8 kB of base64).
const MAX_LINE: usize = 8192;
const MAX_COMMENT: usize = 200;
const DSA_REFUSED: &str =
    "DSA keys are refused (weak, and disabled since OpenSSH 7.0); make a new one: ssh-keygen -t ed25519";

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKey {
    /// `<type> <base64>`, re-encoded: this and nothing else is what sshd gets.
    pub line: String,
    pub algorithm: String,
    pub bits: u32,
    /// `SHA256:<base64>`, as `ssh-keygen -l` and sshd's log show it.
    pub fingerprint: String,
    pub comment: String,
}

/// Parses and checks one key line. The error says what is wrong and what to send instead.
pub fn parse_key_line(input: &str) -> Result<ValidKey, String> {
    let input = input.strip_suffix('\n').unwrap_or(input);
    let input = input.strip_suffix('\r').unwrap_or(input);
    if input.len() > MAX_LINE {
        return Err(format!(
            "the key line is {} bytes; the limit is {MAX_LINE}",
            input.len()
        ));
    }
    if let Some(c) = input.chars().find(|c| c.is_control() && *c != ' ') {
        return Err(format!(
            "the key line contains a control character ({c:?}); send exactly one line `<type> <base64> [comment]`"
        ));
    }
    let mut parts = input.splitn(3, ' ');
    let kind = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    let comment = parts.next().unwrap_or_default().trim();
    let algorithm = Algorithm::new(kind).map_err(|_| {
        if kind.contains('=') || kind.contains('"') || kind.contains(',') {
            format!(
                "the key line starts with options ({kind:?}); options are not accepted: send `<type> <base64> [comment]`"
            )
        } else {
            format!(
                "unknown key type {kind:?}; use ssh-ed25519 (recommended), ecdsa-sha2-nistp256/384/521 or ssh-rsa of \
                 at least {MIN_RSA_BITS} bits"
            )
        }
    })?;
    if algorithm == Algorithm::Dsa {
        return Err(DSA_REFUSED.to_owned());
    }
    if blob.is_empty() {
        return Err("the key line has no base64 key after the type".to_owned());
    }
    check_comment(comment)?;
    let key = PublicKey::from_openssh(&format!("{kind} {blob}")).map_err(|e| {
        format!("the {kind} key does not decode ({e}); copy the whole line from the .pub file")
    })?;
    let bits = match key.key_data() {
        KeyData::Dsa(_) => return Err(DSA_REFUSED.to_owned()),
        data => key_bits(data)
            .ok_or_else(|| format!("key type {kind:?} is not accepted; use ssh-ed25519"))?,
    };
    if key.key_data().is_rsa() && bits < MIN_RSA_BITS {
        return Err(format!(
            "this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required (make a new one: \
             ssh-keygen -t ed25519)"
        ));
    }
    let line = key
        .to_openssh()
        .map_err(|e| format!("cannot re-encode the key: {e}"))?;
    Ok(ValidKey {
        line,
        algorithm: algorithm.as_str().to_owned(),
        bits,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment: comment.to_owned(),
    })
}

/// Comments are shown in tables and the audit log: printable, one line, bounded.
pub fn check_comment(comment: &str) -> Result<(), String> {
    if comment.len() > MAX_COMMENT {
        return Err(format!(
            "the comment is {} bytes; the limit is {MAX_COMMENT}",
            comment.len()
        ));
    }
    if comment.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err("the comment contains control or invisible formatting characters".to_owned());
    }
    Ok(())
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// The key size in bits as `ssh-keygen -l` shows it; `None` for types Rampart does not know.
pub fn key_bits(data: &KeyData) -> Option<u32> {
    Some(match data {
        KeyData::Ed25519(_) | KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => 256,
        KeyData::Ecdsa(k) => ecdsa_bits(k.curve().as_str()),
        KeyData::Rsa(k) => rsa_bits(k.n.as_positive_bytes().unwrap_or_default()),
        KeyData::Dsa(k) => rsa_bits(k.p.as_positive_bytes().unwrap_or_default()),
        _ => return None,
    })
}

fn ecdsa_bits(curve: &str) -> u32 {
    match curve {
        "nistp384" => 384,
        "nistp521" => 521,
        _ => 256,
    }
}

fn rsa_bits(n: &[u8]) -> u32 {
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    let top = n.first().map_or(0, |b| 8 - b.leading_zeros());
    u32::try_from(n.len().saturating_sub(1) * 8)
        .unwrap_or(u32::MAX)
        .saturating_add(top)
}

/// Parses a fingerprint as callers type it: `SHA256:<base64>` (43 characters of unpadded base64).
pub fn parse_fingerprint(input: &str) -> Result<String, String> {
    let b64 = input.strip_prefix("SHA256:").ok_or_else(|| {
        format!(
            "{input:?} is not a SHA256 fingerprint; `rampartctl ssh keys` lists them (SHA256:…)"
        )
    })?;
    if b64.len() != 43
        || !b64
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        return Err(format!(
            "{input:?} is not a SHA256 fingerprint (SHA256: then 43 base64 characters)"
        ));
    }
    Ok(input.to_owned())
}

/// Login names as Debian's `adduser` accepts them: a lowercase letter or `_`, then lowercase letters, digits,
/// `_` and `-`, at most 32 characters. `root` is refused: root never logs in over SSH.
pub fn parse_user(input: &str) -> Result<String, String> {
    rampart_interfaces::user_name::check(input)?;
    if input == "root" {
        return Err(
            "root never logs in over SSH; add the key to an administrator's account".to_owned(),
        );
    }
    Ok(input.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with ssh-keygen for these tests only.
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv8wtBO+shq1rXY7DQHUuHwsUld7bBdKwkYZfPbFm/C alice@laptop";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGXjvl2XcLDOVtdlPUV+tfD1Lq8ygkk/GeQ5jCfquS2ZqVkcFXA87LM0a8KEI6rH6Y0mwQFASu+dj62ZmeMfsH8=";

    #[test]
    fn ed25519_and_ecdsa_parse_with_fingerprints() {
        let k = parse_key_line(ED25519).unwrap();
        assert_eq!(
            (k.algorithm.as_str(), k.bits, k.comment.as_str()),
            ("ssh-ed25519", 256, "alice@laptop")
        );
        assert_eq!(
            k.fingerprint, "SHA256:h1dR2APmgfHYavBR5yPKE9Ya+YF2ayfHuJ8oWXtSPHM",
            "as ssh-keygen -l says"
        );
        assert!(
            !k.line.contains("alice"),
            "the comment stays out of the line sshd gets"
        );
        let e = parse_key_line(ECDSA).unwrap();
        assert_eq!((e.algorithm.as_str(), e.bits), ("ecdsa-sha2-nistp256", 256));
        assert_eq!(parse_fingerprint(&k.fingerprint).unwrap(), k.fingerprint);
    }

    #[test]
    fn options_newlines_and_garbage_are_refused() {
        let cases = [
            (format!("command=\"/bin/sh\" {ED25519}"), "options"),
            (format!("from=\"10.0.0.1\",no-pty {ED25519}"), "options"),
            (format!("{ED25519}\nssh-ed25519 AAAA x"), "control"),
            (ED25519.replace(' ', "\t"), "control"),
            ("ssh-dss AAAAB3NzaC1kc3MAAACBAP".to_owned(), "DSA"),
            ("ssh-foo AAAA".to_owned(), "unknown key type"),
            ("ssh-ed25519".to_owned(), "no base64"),
            ("ssh-ed25519 AAAAB3NzaC1yc2E=".to_owned(), "does not decode"),
            (format!("{ED25519} \u{202E}evil"), "invisible"),
            // An ecdsa blob labelled as ed25519.
            (
                format!("ssh-ed25519 {}", ECDSA.split(' ').nth(1).unwrap()),
                "does not decode",
            ),
        ];
        for (line, want) in cases {
            let err = parse_key_line(&line).unwrap_err();
            assert!(
                err.contains(want),
                "{line:?}: {err:?} should mention {want:?}"
            );
        }
    }

    #[test]
    fn rsa_bit_count() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x01]), 1);
        assert_eq!(rsa_bits(&[]), 0);
        let mut n = vec![0xC0];
        n.extend(vec![0; 255]);
        assert_eq!(rsa_bits(&n), 2048);
    }

    #[test]
    fn user_names() {
        assert!(parse_user("alice").is_ok());
        assert!(parse_user("_svc-1").is_ok());
        for bad in [
            "",
            "Alice",
            "1abc",
            "a b",
            "a/b",
            "-x",
            &"a".repeat(33),
            "root",
        ] {
            assert!(parse_user(bad).is_err(), "{bad:?} accepted");
        }
    }
}
