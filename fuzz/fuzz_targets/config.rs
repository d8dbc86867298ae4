//! Fuzzes ha.yaml parsing and validation: any bytes must give a config or a list of located
//! errors, quickly, never a panic or a hang (issue 26: the old line scanner hung on
//! `a: {[x]: 1}` and on `trackers: ["127.0.0.1:22122"}`; both are in corpus/config).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = fdfs_ha::config::check_str(text) {
        assert!(!errors.is_empty());
        for e in &errors {
            let _ = e.to_string();
        }
    }
});
