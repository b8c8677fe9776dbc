//! Layered TOML drop-ins, the one way every daemon is configured.
//!
//! For a daemon `name`, files `*.toml` are read from `<root>/<name>.d/` for each root in order (lowest first:
//! `/usr/lib/rampart` shipped defaults, `/run/rampart` generated at boot, `/etc/rampart` the admin's). As in
//! systemd, a file in a later root masks a file of the same name in an earlier one; the surviving files are applied
//! in lexical order of their names. Each file parses into a fragment whose fields are all optional (unknown keys
//! are an error naming the file), fragments merge field by field, and the daemon validates the result into its
//! `Settings`. Rejected: one big file (no clean way to ship defaults) and environment variables (invisible to the
//! audit trail and the advisor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::Error;

/// Where drop-ins live, lowest precedence first.
pub const ROOTS: [&str; 3] = ["/usr/lib/rampart", "/run/rampart", "/etc/rampart"];

/// A configuration fragment: every field optional; `merge` lets `other` (a later file) override `self`.
pub trait Fragment: DeserializeOwned + Default {
    fn merge(&mut self, other: Self);
}

/// Loads and merges `<root>/<name>.d/*.toml` over the default roots.
pub fn load<F: Fragment>(name: &str) -> Result<F, Error> {
    let roots: Vec<PathBuf> = ROOTS.iter().map(PathBuf::from).collect();
    load_from(name, &roots)
}

/// Like [`load`] with explicit roots (tests, tools).
pub fn load_from<F: Fragment>(name: &str, roots: &[PathBuf]) -> Result<F, Error> {
    let mut merged = F::default();
    for path in drop_ins(name, roots)? {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ConfigRead {
            path: path.clone(),
            source,
        })?;
        let fragment: F = toml::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        merged.merge(fragment);
    }
    Ok(merged)
}

/// The drop-in files that apply, in the order they apply.
pub fn drop_ins(name: &str, roots: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for root in roots {
        let dir = root.join(format!("{name}.d"));
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::ConfigDir { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| Error::ConfigDir {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if !is_toml(&path) {
                continue;
            }
            if let Some(file) = path.file_name().and_then(|f| f.to_str()) {
                by_name.insert(file.to_owned(), path);
            }
        }
    }
    Ok(by_name.into_values().collect())
}

fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && !path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
}

/// Sets `target` to `value` when the later fragment has it: the one-liner every `merge` is made of.
pub fn take<T>(target: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *target = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Frag {
        a: Option<u32>,
        b: Option<String>,
    }
    impl Fragment for Frag {
        fn merge(&mut self, other: Self) {
            take(&mut self.a, other.a);
            take(&mut self.b, other.b);
        }
    }

    fn write(root: &Path, file: &str, text: &str) {
        let dir = root.join("demo.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn later_roots_mask_same_name_and_files_apply_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (usr, etc) = (tmp.path().join("usr"), tmp.path().join("etc"));
        write(&usr, "10-defaults.toml", "a = 1\nb = \"usr\"\n");
        write(&usr, "50-other.toml", "a = 5\n");
        write(&etc, "50-other.toml", "b = \"etc\"\n"); // masks usr's 50-other.toml entirely
        write(&etc, "README", "not toml, ignored");
        let f: Frag = load_from("demo", &[usr, tmp.path().join("run-missing"), etc]).unwrap();
        assert_eq!(
            f,
            Frag {
                a: Some(1),
                b: Some("etc".into())
            }
        );
    }

    #[test]
    fn unknown_key_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "10-x.toml", "c = 1\n");
        let err = load_from::<Frag>("demo", &[tmp.path().to_path_buf()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("10-x.toml") && text.contains("unknown field"),
            "{text}"
        );
    }

    #[test]
    fn bad_syntax_is_an_error_not_a_default() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "10-x.toml", "a = \n");
        assert!(matches!(
            load_from::<Frag>("demo", &[tmp.path().to_path_buf()]),
            Err(Error::ConfigParse { .. })
        ));
    }
}
