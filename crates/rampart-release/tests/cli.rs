//! The tool end to end on small fake image files: keys, init, build, verify (repository and bundle), a
//! timestamp refresh, a root rotation, a second release, and refusals with clear messages.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)] // tests run the binary directly and may panic

use std::path::{Path, PathBuf};
use std::process::Output;

fn tool(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rampart-release"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = tool(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = tool(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} did not fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Setup {
    _tmp: tempfile::TempDir,
    keys: PathBuf,
    repo: PathBuf,
    image: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    for (role, name) in [
        ("root", "a"),
        ("root", "b"),
        ("targets", "t"),
        ("snapshot", "s"),
        ("timestamp", "ts"),
    ] {
        ok(&["keygen", "--out", s(&keys), "--role", role, "--name", name]);
    }
    let image = tmp.path().join("image");
    std::fs::create_dir_all(&image).unwrap();
    // 3.5 chunks of 4 KiB: the short last chunk is exercised.
    let rootfs: Vec<u8> = (0..14_336u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(image.join("root-a.img"), rootfs).unwrap();
    std::fs::write(image.join("vmlinuz"), b"fake kernel").unwrap();
    std::fs::write(image.join("initrd.img"), b"fake initrd").unwrap();
    let repo = tmp.path().join("repo");
    Setup {
        keys,
        repo,
        image,
        _tmp: tmp,
    }
}

fn build(st: &Setup, keys: &Path, version: &str) -> String {
    ok(&[
        "build",
        "--repo",
        s(&st.repo),
        "--keys",
        s(keys),
        "--rootfs",
        s(&st.image.join("root-a.img")),
        "--kernel",
        s(&st.image.join("vmlinuz")),
        "--initrd",
        s(&st.image.join("initrd.img")),
        "--version",
        version,
        "--min-version",
        "0.1.0",
        "--variant",
        "x86_64",
        "--chunk-size",
        "4096",
        "--zstd-level",
        "3",
    ])
}

#[test]
fn keygen_writes_secret_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let st = setup();
    let mode = |name: &str| {
        std::fs::metadata(st.keys.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("root-a.key.asc"), 0o600);
    assert_eq!(mode("root-a.rev.asc"), 0o600);
    let cert = std::fs::read_to_string(st.keys.join("root-a.cert.asc")).unwrap();
    assert!(cert.contains("BEGIN PGP PUBLIC KEY BLOCK"));
    assert!(!cert.contains("PRIVATE"));
    // Never overwritten.
    let err = fails(&[
        "keygen",
        "--out",
        s(&st.keys),
        "--role",
        "root",
        "--name",
        "a",
    ]);
    assert!(err.contains("must not exist yet"), "{err}");
}

#[test]
fn init_build_verify_bundle_refresh_rotate() {
    let st = setup();
    ok(&[
        "init",
        "--repo",
        s(&st.repo),
        "--keys",
        s(&st.keys),
        "--root-threshold",
        "2",
    ]);
    let out = build(&st, &st.keys, "0.2.0");
    assert!(out.contains("ok: release 0.2.0 for x86_64"), "{out}");
    let meta = st.repo.join("metadata");
    for f in [
        "1.root.json",
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "1.targets.json",
        "1.snapshot.json",
    ] {
        assert!(meta.join(f).is_file(), "{f}");
    }
    let names: Vec<String> = std::fs::read_dir(st.repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.len() > 65 && n.as_bytes()[64] == b'.'),
        "{names:?}"
    );

    let root1 = meta.join("1.root.json");
    let out = ok(&["verify", "--root", s(&root1), "--repo", s(&st.repo)]);
    assert!(out.contains("image 14336 bytes"), "{out}");
    let bundle = st.repo.with_extension("tar");
    ok(&["bundle", "--repo", s(&st.repo), "--out", s(&bundle)]);
    ok(&["verify", "--root", s(&root1), "--bundle", s(&bundle)]);
    // Installability: the right variant passes, another is refused by name.
    ok(&[
        "verify",
        "--root",
        s(&root1),
        "--repo",
        s(&st.repo),
        "--variant",
        "x86_64",
        "--installed",
        "0.1.0",
    ]);
    let err = fails(&[
        "verify",
        "--root",
        s(&root1),
        "--repo",
        s(&st.repo),
        "--variant",
        "arm64",
        "--installed",
        "0.1.0",
    ]);
    assert!(err.contains("variant"), "{err}");
    let err = fails(&[
        "verify",
        "--root",
        s(&root1),
        "--repo",
        s(&st.repo),
        "--variant",
        "x86_64",
        "--installed",
        "0.3.0",
        "--rollback-floor",
        "0.1.0",
    ]);
    assert!(err.contains("downgrade"), "{err}");
    let err = fails(&[
        "verify",
        "--root",
        s(&root1),
        "--repo",
        s(&st.repo),
        "--variant",
        "x86_64",
        "--installed",
        "0.1.0",
        "--rollback-floor",
        "0.5.0",
    ]);
    assert!(err.contains("anti-rollback floor"), "{err}");

    // Timestamp refresh with only the timestamp key.
    let online = st.repo.parent().unwrap().join("online");
    std::fs::create_dir_all(&online).unwrap();
    let f = "timestamp-ts.key.asc";
    std::fs::copy(st.keys.join(f), online.join(f)).unwrap();
    ok(&[
        "refresh-timestamp",
        "--repo",
        s(&st.repo),
        "--keys",
        s(&online),
    ]);

    // Rotate to new root keys; a device holding root 1 walks to root 2.
    let new = st.repo.parent().unwrap().join("newkeys");
    for name in ["c", "d"] {
        ok(&["keygen", "--out", s(&new), "--role", "root", "--name", name]);
    }
    let out = ok(&[
        "rotate-root",
        "--repo",
        s(&st.repo),
        "--old-keys",
        s(&st.keys),
        "--keys",
        s(&new),
    ]);
    assert!(out.contains("root version 2"), "{out}");
    ok(&["verify", "--root", s(&root1), "--repo", s(&st.repo)]);
    // Releases after the rotation, a new bundle carrying both roots.
    build(&st, &st.keys, "0.3.0");
    ok(&["bundle", "--repo", s(&st.repo), "--out", s(&bundle)]);
    let out = ok(&["verify", "--root", s(&root1), "--bundle", s(&bundle)]);
    assert!(
        out.contains("release 0.3.0") && out.contains("root v2"),
        "{out}"
    );

    // The old root keys alone cannot make root 3.
    let err = fails(&[
        "rotate-root",
        "--repo",
        s(&st.repo),
        "--old-keys",
        s(&st.keys),
        "--keys",
        s(&st.keys),
    ]);
    assert!(err.contains("current root keys"), "{err}");
}

#[test]
fn tampering_is_caught_by_verify() {
    let st = setup();
    ok(&["init", "--repo", s(&st.repo), "--keys", s(&st.keys)]);
    build(&st, &st.keys, "1.0.0");
    let root1 = st.repo.join("metadata/1.root.json");
    // A target changed on the mirror.
    let kernel = std::fs::read_dir(st.repo.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with(".vmlinuz"))
        .unwrap();
    std::fs::write(&kernel, b"evil kernel").unwrap();
    let err = fails(&["verify", "--root", s(&root1), "--repo", s(&st.repo)]);
    assert!(err.contains("vmlinuz") && err.contains("digest"), "{err}");
    // Metadata edited after signing.
    let targets = st.repo.join("metadata/1.targets.json");
    let text = std::fs::read_to_string(&targets)
        .unwrap()
        .replace("1.0.0", "9.0.0");
    std::fs::write(&targets, text).unwrap();
    let err = fails(&["verify", "--root", s(&root1), "--repo", s(&st.repo)]);
    assert!(err.contains("targets"), "{err}");
    // Garbage input gives an error, not a panic.
    std::fs::write(st.repo.join("junk"), b"\0\xffnot json").unwrap();
    let err = fails(&["canonical", s(&st.repo.join("junk"))]);
    assert!(err.contains("not valid metadata"), "{err}");
    let err = fails(&[
        "verify",
        "--root",
        s(&st.repo.join("junk")),
        "--repo",
        s(&st.repo),
    ]);
    assert!(err.contains("trusted root"), "{err}");
}

#[test]
fn canonical_prints_the_signed_bytes() {
    let st = setup();
    ok(&["init", "--repo", s(&st.repo), "--keys", s(&st.keys)]);
    let out = ok(&["canonical", s(&st.repo.join("metadata/root.json"))]);
    assert!(out.starts_with("{\"_type\":\"root\","), "{out}");
    assert!(
        !out.contains('\n') || out.contains("BEGIN PGP"),
        "compact apart from the armored certificates"
    );
}
