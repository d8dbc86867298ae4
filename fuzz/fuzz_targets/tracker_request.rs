//! Fuzzes fdfs_ha::fuzzing::tracker_request (see its doc); the corpus in fuzz/corpus/tracker_request also runs as
//! an ordinary test (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fdfs_ha::fuzzing::tracker_request(data);
});
