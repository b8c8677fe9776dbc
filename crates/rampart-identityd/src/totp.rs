//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps — the parameters every authenticator app supports — with
//! a 160-bit secret. A code is accepted for the current step and one step either side (clock drift), and **once**:
//! the account remembers the last step it accepted, and a code for that step or an earlier one is a replay.

use totp_rs::{Algorithm, TOTP};

use crate::secrets::{random_bytes, BASE32};

pub const STEP_SECS: u64 = 30;
pub const DIGITS: usize = 6;
/// Steps accepted either side of now.
pub const SKEW: u64 = 1;
pub const ISSUER: &str = "Rampart";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a code for any step in the window (or not 6 digits).
    Wrong,
    /// A right code for a step already used: someone replays it.
    Replayed,
}

/// A fresh secret, base32 without padding (32 characters).
pub fn new_secret() -> String {
    BASE32.encode(&random_bytes::<20>())
}

fn totp(secret: &str, account: &str) -> Option<TOTP> {
    let bytes = BASE32.decode(secret.as_bytes()).ok()?;
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0, // the window is handled here, step by step, to know which step matched
        STEP_SECS,
        bytes,
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .ok()
}

/// `otpauth://totp/Rampart:<account>@<host>?secret=…&issuer=Rampart…`, for QR codes.
pub fn uri(secret: &str, account: &str, host: &str) -> String {
    let label = format!("{account}@{host}");
    totp(secret, &label)
        .map(|t| t.get_url())
        .unwrap_or_default()
}

/// The code for the step holding `time` (tests, and the console's self-check).
pub fn code_at(secret: &str, time: u64) -> Option<String> {
    Some(totp(secret, "x")?.generate(time))
}

/// Checks `code` at `now`; returns the step it was made for, which must then be stored as the account's last one.
pub fn verify(secret: &str, code: &str, now: u64, last_step: u64) -> Result<u64, Refusal> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Wrong);
    }
    let Some(t) = totp(secret, "x") else {
        return Err(Refusal::Wrong);
    };
    let current = now / STEP_SECS;
    let mut replayed = false;
    for step in current.saturating_sub(SKEW)..=current + SKEW {
        if crate::secrets::same(&t.generate(step * STEP_SECS), code) {
            if step <= last_step {
                replayed = true;
                continue;
            }
            return Ok(step);
        }
    }
    Err(if replayed {
        Refusal::Replayed
    } else {
        Refusal::Wrong
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B: the ASCII secret "12345678901234567890", SHA-1, 8 digits; its 6-digit codes are the
    // last six digits of those.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn matches_rfc_6238_vectors() {
        for (time, code8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(RFC_SECRET, time).unwrap(), code8[2..], "t={time}");
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let now = 1_700_000_000;
        for offset in [-30i64, 0, 30] {
            let code = code_at(RFC_SECRET, (now as i64 + offset) as u64).unwrap();
            assert!(verify(RFC_SECRET, &code, now, 0).is_ok(), "offset {offset}");
        }
        for offset in [-90i64, 90] {
            let code = code_at(RFC_SECRET, (now as i64 + offset) as u64).unwrap();
            assert_eq!(
                verify(RFC_SECRET, &code, now, 0),
                Err(Refusal::Wrong),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn a_code_is_accepted_once() {
        let now = 1_700_000_000;
        let code = code_at(RFC_SECRET, now).unwrap();
        let step = verify(RFC_SECRET, &code, now, 0).unwrap();
        assert_eq!(step, now / STEP_SECS);
        assert_eq!(verify(RFC_SECRET, &code, now, step), Err(Refusal::Replayed));
        assert_eq!(
            verify(RFC_SECRET, &code, now + 10, step),
            Err(Refusal::Replayed)
        );
        // The previous step's code cannot be used after a later one either.
        let earlier = code_at(RFC_SECRET, now - 30).unwrap();
        assert_eq!(
            verify(RFC_SECRET, &earlier, now, step),
            Err(Refusal::Replayed)
        );
        let next = code_at(RFC_SECRET, now + 30).unwrap();
        assert_eq!(verify(RFC_SECRET, &next, now + 30, step), Ok(step + 1));
    }

    #[test]
    fn junk_is_wrong_not_a_panic() {
        for junk in ["", "12345", "1234567", "abcdef", "12 456", "١٢٣٤٥٦"] {
            assert_eq!(
                verify(RFC_SECRET, junk, 1_700_000_000, 0),
                Err(Refusal::Wrong),
                "{junk:?}"
            );
        }
        assert_eq!(
            verify("not base32!", "123456", 1_700_000_000, 0),
            Err(Refusal::Wrong)
        );
    }

    #[test]
    fn uri_names_issuer_account_and_secret() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        let u = uri(&s, "alice", "host.example");
        assert!(
            u.starts_with("otpauth://totp/Rampart:alice%40host.example?"),
            "{u}"
        );
        assert!(
            u.contains(&format!("secret={s}")) && u.contains("issuer=Rampart"),
            "{u}"
        );
    }
}
