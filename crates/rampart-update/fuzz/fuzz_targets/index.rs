//! Arbitrary bytes as a signed chunk index (the map the updater writes the slot by): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_update::chunks::ChunkIndex;

fuzz_target!(|data: &[u8]| {
    let _ = ChunkIndex::parse(data);
});
