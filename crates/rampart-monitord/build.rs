//! Compiles bpf/monitor.bpf.c with clang and generates its libbpf skeleton into OUT_DIR (never committed).

use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let bpf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf");
    let source = bpf.join("monitor.bpf.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("monitor.skel.rs");
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the multiarch directory; clang's bpf target
    // does not look there on its own.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    let multiarch = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    if let Err(e) = SkeletonBuilder::new()
        .source(&source)
        .clang_args([
            format!("-I{}", bpf.display()),
            format!("-I/usr/include/{multiarch}"),
            "-Wall".to_owned(),
            "-O2".to_owned(),
        ])
        .build_and_generate(&out)
    {
        // The whole chain (clang's own diagnostics included) so the failing line is visible in cargo's output.
        panic!("building {}: {e:?}", source.display());
    }
    for file in ["monitor.bpf.c", "monitor.h", "kernel.h"] {
        println!("cargo:rerun-if-changed={}", bpf.join(file).display());
    }
}
