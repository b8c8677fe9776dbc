//! Every permission a guarded method in any daemon asks for is in the catalogue identityd grants from
//! (`rampart_interfaces::identity::PERMISSIONS`): a method whose permission is missing would be refused to every
//! role but root, silently. Read from the sources, so a new daemon is covered without anyone remembering to.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use rampart_interfaces::identity::{role_allows, PERMISSIONS};

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_guarded_permission_is_catalogued() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(crates).unwrap().flatten() {
        let src = krate.path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    let mut seen = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for piece in text.split("permission: \"").skip(1) {
            let name = piece.split('"').next().unwrap().to_owned();
            seen.push((name, file.display().to_string()));
        }
    }
    assert!(
        seen.len() >= 20,
        "the scan found too few permissions: {seen:?}"
    );
    for (name, file) in &seen {
        let known = PERMISSIONS.iter().any(|(p, _)| p == name)
            || rampart_identityd::AUDIT_EVENTS.contains(&name.as_str());
        assert!(known, "{file}: permission {name:?} is not in the catalogue");
    }
}

#[test]
fn roles_hold_what_they_promise() {
    for (p, _) in PERMISSIONS {
        assert!(role_allows("root", p), "{p}");
    }
    assert!(!role_allows("admin", "identity.grant-root"));
    assert!(
        role_allows("admin", "firewall.open") && role_allows("admin", "identity.account-create")
    );
    for (p, _) in PERMISSIONS {
        let read_only = p.ends_with(".read") || *p == "identity.password";
        assert_eq!(role_allows("auditor", p), read_only, "auditor and {p}");
    }
    assert!(!role_allows("tenant", "firewall.read") && role_allows("tenant", "identity.password"));
    assert!(role_allows("setup", "ssh.port") && !role_allows("setup", "firewall.open"));
    assert!(!role_allows("root", "no.such-permission") && !role_allows("nobody", "audit.read"));
}
