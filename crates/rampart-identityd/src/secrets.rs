//! Random secrets and how they are kept: session tokens (256 bits, base64url), setup and recovery codes (base32
//! without look-alike characters), and the SHA-256 under which tokens and codes are stored.
//!
//! Tokens and codes are high-entropy random values, so a fast hash is enough to make a stolen database useless:
//! nobody can search 2^80 or more inputs. Passwords are another matter (see [`crate::password`]).

use data_encoding::{Encoding, BASE64URL_NOPAD};
use sha2::{Digest, Sha256};

/// Digits and capitals without the look-alikes 0/O, 1/I/L and U: what people read off a console and
/// type. 30 letters, log2(30) ≈ 4.9 bits each.
const CODE_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `n` bytes from the kernel's CSPRNG. A machine that cannot give randomness cannot make secrets: abort rather
/// than make weak ones.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("getrandom(2) failed: no randomness, no secrets");
    buf
}

/// A session, challenge or setup token: 32 random bytes, base64url (43 characters).
pub fn token() -> String {
    BASE64URL_NOPAD.encode(&random_bytes::<32>())
}

/// A short opaque id for logs (never derived from the token): 8 random bytes, hex.
pub fn id() -> String {
    random_bytes::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `groups` groups of 4 characters from the code alphabet (5 bits each), e.g. `K7PX-3QWM-…`.
pub fn code(groups: usize) -> String {
    // Five random bits per try, values 30 and 31 rejected, so every letter is equally likely.
    let letters = CODE_ALPHABET;
    let mut out = String::new();
    let mut made = 0;
    while made < groups * 4 {
        for b in random_bytes::<32>() {
            let v = usize::from(b & 0x1f);
            if v >= letters.len() || made == groups * 4 {
                continue;
            }
            if made > 0 && made % 4 == 0 {
                out.push('-');
            }
            out.push(char::from(letters[v]));
            made += 1;
        }
    }
    out
}

/// A code as typed, reduced to what [`code`] makes: upper case, no separators or spaces.
pub fn normalize_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The SHA-256 of a token or a normalized code, hex: what the database keeps.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time equality for secrets of public length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// At most `max` bytes of `text`, cut at a character boundary (never inside a UTF-8 sequence).
pub fn bounded(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// base32 (RFC 4648, no padding) for TOTP secrets, as authenticator apps take them.
pub const BASE32: Encoding = data_encoding::BASE32_NOPAD;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = token();
        assert_eq!(BASE64URL_NOPAD.decode(a.as_bytes()).unwrap().len(), 32);
        assert_ne!(a, token());
    }

    #[test]
    fn codes_use_the_readable_alphabet_in_groups() {
        for _ in 0..200 {
            let c = code(4);
            assert_eq!(c.len(), 19, "{c}");
            let plain = normalize_code(&c);
            assert_eq!(plain.len(), 16);
            assert!(plain.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!plain.contains(['0', 'O', '1', 'I', 'L', 'U']));
        }
        assert_eq!(normalize_code(" k7px-3qwm "), "K7PX3QWM");
    }

    #[test]
    fn bounded_never_splits_a_character() {
        assert_eq!(bounded("abc", 64), "abc");
        assert_eq!(bounded(&"é".repeat(40), 64).len(), 64);
        assert_eq!(bounded(&format!("a{}", "é".repeat(40)), 64).len(), 63);
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
