//! Passwords: argon2id hashes in PHC strings (parameters travel with each hash, so they can be raised later
//! without a migration) and the password policy.
//!
//! **Cost.** Default m = 64 MiB, t = 3, p = 1 (RFC 9106's second recommended option, with one lane: the argon2
//! crate computes lanes one after another, so more lanes would only cost time). `make bench` measures it: a few
//! hundred milliseconds per login on a 2-core machine, so an attacker who stole the database gets a few guesses per
//! core-second, and identityd caps concurrent hashes so a login flood cannot take the machine's memory.
//!
//! **Policy** ([`check_policy`]): at least 14 characters; then zxcvbn (dictionaries of common passwords, names and
//! words, l33t substitutions, dates and years, keyboard walks, repeats) must rate it at the top score with the
//! site's own words — host name, site names from the settings, the account name, "rampart" — as known inputs; and,
//! explicitly, no site word with a year or a number tacked on (`ClientName2024!`, the pattern behind the seeds'
//! twelve breached databases), whatever the score.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::Error;

/// Minimum length, in characters.
pub const MIN_CHARS: usize = 14;
/// Longer inputs are refused before hashing (a megabyte "password" is an attack on the hasher, not a secret).
pub const MAX_BYTES: usize = 1024;

/// argon2id with the configured cost.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: Params,
    /// A hash of a random password with the same cost: checked against for unknown accounts, so a login for a
    /// name that does not exist takes as long as one that does.
    dummy: String,
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32, lanes: u32) -> Result<Hasher, Error> {
        let params = Params::new(memory_kib, iterations, lanes, None)
            .map_err(|e| Error::Invalid(format!("argon2 parameters: {e}")))?;
        let mut hasher = Hasher {
            params,
            dummy: String::new(),
        };
        hasher.dummy = hasher.hash(&crate::secrets::token())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash` with a fresh 128-bit salt.
    pub fn hash(&self, password: &str) -> Result<String, Error> {
        let salt = SaltString::encode_b64(&crate::secrets::random_bytes::<16>())
            .map_err(|e| Error::Hash(e.to_string()))?;
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Hash(e.to_string()))
    }

    /// Whether `password` matches `phc` (its own parameters apply). A malformed stored hash never matches.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(e) => {
                log::error!(
                    "a stored password hash does not parse ({e}); that account cannot log in"
                );
                false
            }
        }
    }

    /// Spends the same time as [`Hasher::verify`] and returns false.
    pub fn verify_nobody(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.dummy);
        false
    }
}

/// Refuses passwords that are short, common, or built from the site's own words; the message says why and what
/// to do instead. `context` holds the words an attacker would try first (host, site and account names).
pub fn check_policy(password: &str, context: &[String]) -> Result<(), String> {
    let chars = password.chars().count();
    if password.len() > MAX_BYTES {
        return Err(format!("the password is longer than {MAX_BYTES} bytes"));
    }
    if chars < MIN_CHARS {
        return Err(format!(
            "the password has {chars} characters; use at least {MIN_CHARS} (a passphrase of four or five random \
             words, or a password manager's random password)"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("the password contains control characters".to_owned());
    }
    let words: Vec<String> = context
        .iter()
        .flat_map(|c| split_words(c))
        .filter(|w| w.len() >= 3)
        .collect();
    if let Some(word) = site_word_with_number(password, &words) {
        return Err(format!(
            "the password is the site word {word:?} with a number or year and symbols added: attackers try exactly \
             that first; choose something unrelated to this machine or company"
        ));
    }
    let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if let Some(pieces) = mostly_predictable(&estimate) {
        return Err(format!(
            "the password is mostly predictable pieces ({}) with little else: attackers combine exactly those; \
             choose something unrelated to this machine, its users and common passwords",
            pieces.join(", ")
        ));
    }
    if estimate.score() < zxcvbn::Score::Four {
        let mut why = String::from("the password is too easy to guess");
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                why.push_str(&format!(" ({warning})"));
            }
            let tips: Vec<String> = feedback
                .suggestions()
                .iter()
                .map(|s| s.to_string())
                .collect();
            if !tips.is_empty() {
                why.push_str(&format!(": {}", tips.join(" ")));
            }
        }
        why.push_str(
            " — four or five random words, or a password manager's random password, will do",
        );
        return Err(why);
    }
    Ok(())
}

/// Characters a password needs beyond the predictable pieces zxcvbn finds in it.
const MIN_UNPREDICTABLE: usize = 8;

/// The predictable pieces (`"password"`, `"2026"`, the account name…) when they leave fewer than
/// [`MIN_UNPREDICTABLE`] characters of anything else. zxcvbn's score alone lets `dave-password-2026` through:
/// multiplying the guesses of a few well-known pieces gives a big number, but attackers' rule sets try exactly
/// those combinations.
fn mostly_predictable(estimate: &zxcvbn::Entropy) -> Option<Vec<String>> {
    use zxcvbn::matching::patterns::MatchPattern;
    let mut predictable = Vec::new();
    let mut other = 0;
    for m in estimate.sequence() {
        let weak = match &m.pattern {
            MatchPattern::Dictionary(d) => {
                // zxcvbn does not export its dictionary enum; its Debug names are stable variant names.
                let list = format!("{:?}", d.dictionary_name);
                list == "UserInputs" || (list == "Passwords" && d.rank <= 10_000)
            }
            MatchPattern::Spatial(_) | MatchPattern::Repeat(_) | MatchPattern::Sequence(_) => true,
            MatchPattern::Regex(_) | MatchPattern::Date(_) => true,
            // Separators and symbols between the pieces do not count as unpredictable either.
            MatchPattern::BruteForce => m.token.chars().all(|c| !c.is_alphanumeric()),
        };
        if weak {
            if m.token.chars().any(char::is_alphanumeric) {
                predictable.push(format!("{:?}", m.token));
            }
        } else {
            other += m.token.chars().count();
        }
    }
    (other < MIN_UNPREDICTABLE && !predictable.is_empty()).then_some(predictable)
}

/// Lower-case alphabetic words of `text` (`Acme-Hosting.example` → acme, hosting, example).
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let joined: String = out.concat();
    if out.len() > 1 {
        out.push(joined);
    }
    out
}

/// Undoes the usual l33t substitutions, lower-cased.
fn unleet(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '8' => 'b',
            '(' => 'c',
            '3' => 'e',
            '6' | '9' => 'g',
            '1' | '!' | '|' => 'i',
            '0' => 'o',
            '$' | '5' => 's',
            '7' | '+' => 't',
            '2' => 'z',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// The site word the password is made of, if it is one (or one repeated) with digits and symbols at the ends, with
/// or without l33t, or one with a few letters and a number added.
fn site_word_with_number(password: &str, words: &[String]) -> Option<String> {
    let letters = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphabetic())
            .collect::<String>()
            .to_lowercase()
    };
    // The middle between the digits/symbols at both ends ("Cl1entN@me" of "Cl1entN@me2024!!"), as typed and with
    // the l33t undone.
    let middle = password.trim_matches(|c: char| {
        c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()
    });
    let has_number = password.chars().any(|c| c.is_ascii_digit());
    for core in [letters(middle), letters(&unleet(middle))] {
        if core.is_empty() {
            continue;
        }
        for w in words {
            let exact = core == *w || core == format!("{w}{w}");
            let padded = has_number && core.len() <= w.len() + 4 && core.contains(w.as_str());
            if exact || padded {
                return Some(w.clone());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Vec<String> {
        vec![
            "acme-hosting.example".into(),
            "ClientName".into(),
            "web01".into(),
            "alice".into(),
            "rampart".into(),
        ]
    }

    #[test]
    fn refuses_the_seed_patterns() {
        for bad in [
            "Company2024!",         // short
            "ClientName2024!!",     // site name + year + symbols
            "Cl1entN@me2024!!",     // the same in l33t
            "AcmeHosting2025!!",    // the host name's words joined
            "Rampart2026!!!!!",     // the product's name
            "P@ssw0rd12345678",     // a common password, l33t, with digits
            "Welcome1Welcome1",     // common, repeated
            "qwertyuiopasdfgh",     // a keyboard walk
            "aaaaaaaaaaaaaaaaaa",   // a repeat
            "abcdefghijklmnop",     // a sequence
            "alice-alice-alice",    // the account name
            "iloveyou12345678",     // common
            "dave-password-2026",   // a name, a common password and a year
            "Summer2024Summer2024", // season + year, twice
        ] {
            let r = check_policy(bad, &site());
            assert!(r.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn accepts_random_passwords_and_passphrases() {
        for good in [
            "dK8$mN2!vX9pLq3@",
            "tangerine violin oxide march",
            "correct-horse-battery-staple-42",
            "Vq7#zL2m!Rt9wXc",
        ] {
            assert_eq!(check_policy(good, &site()), Ok(()), "{good}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let short = check_policy("short", &site()).unwrap_err();
        assert!(short.contains("at least 14"), "{short}");
        let pattern = check_policy("ClientName2024!!", &site()).unwrap_err();
        assert!(
            pattern.contains("clientname") && pattern.contains("year"),
            "{pattern}"
        );
        assert!(check_policy(&"x".repeat(2000), &site())
            .unwrap_err()
            .contains("longer"));
        assert!(check_policy("abcdefghij\u{7}klmnopq", &site())
            .unwrap_err()
            .contains("control"));
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let h = Hasher::new(1024, 1, 1).unwrap(); // cheap parameters: the test checks behaviour, not cost
        let a = h.hash("tangerine violin oxide march").unwrap();
        let b = h.hash("tangerine violin oxide march").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(h.verify("tangerine violin oxide march", &a));
        assert!(!h.verify("tangerine violin oxide marc", &a));
        assert!(!h.verify("anything", "not a phc string"));
        assert!(!h.verify_nobody("anything"));
    }
}
