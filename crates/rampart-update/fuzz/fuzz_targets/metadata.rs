//! Arbitrary bytes as a trusted root.json (envelope, canonical JSON, root checks, OpenPGP certificates and
//! signatures) and as an offline bundle's tar stream: never a panic, never an allocation beyond the caps.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use rampart_update::bundle::BundleMetadata;
use rampart_update::{KnownVersions, Limits, Trusted};

fuzz_target!(|data: &[u8]| {
    let _ = Trusted::new(data, SystemTime::UNIX_EPOCH, KnownVersions::default(), Limits::default());
    let _ = BundleMetadata::read(data, 64 * 1024);
});
