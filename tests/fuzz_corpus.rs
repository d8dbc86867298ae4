//! Runs each FastDFS request fuzz target over its corpus (fuzz/corpus/<target>/) as an ordinary
//! test, so CI exercises the targets without cargo-fuzz; plus every one-byte truncation and
//! a bit flip of each seed, which is where decoders usually slip.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "{target}: corpus too small");
    out
}

fn run(target: &str, f: fn(&[u8])) {
    for (name, seed) in corpus(target) {
        let r = std::panic::catch_unwind(|| {
            f(&seed);
            for n in 0..seed.len() {
                f(&seed[..n]);
            }
            for i in 0..seed.len() {
                let mut v = seed.clone();
                v[i] ^= 0x80;
                f(&v);
            }
        });
        assert!(r.is_ok(), "{target}: {name} (or a variant of it) panicked");
    }
}

#[test]
fn tracker_request_corpus() {
    run("tracker_request", fdfs_ha::fuzzing::tracker_request);
}

#[test]
fn storage_request_corpus() {
    run("storage_request", fdfs_ha::fuzzing::storage_request);
}

#[test]
fn file_id_corpus() {
    run("file_id", fdfs_ha::fuzzing::file_id);
}
