//! Account names, as every interface takes them: what sshd, NSS and the panel all accept without quoting.

/// Checks `input` is a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`, at most 32
/// characters (the portable subset of `useradd`'s rules; no `.`, `@`, `$` or upper case).
pub fn check(input: &str) -> Result<(), String> {
    let mut chars = input.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok || input.len() > 32 {
        return Err(format!(
            "{input:?} is not a valid user name (a lowercase letter, then lowercase letters, digits, _ or -; at most \
             32 characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn portable_names_only() {
        for ok in ["alice", "_svc", "a-b_c9", &"a".repeat(32)] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "9lives",
            "-x",
            "a.b",
            "a@b",
            "a b",
            "é",
            "a\n",
            &"a".repeat(33),
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
