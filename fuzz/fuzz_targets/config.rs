//! The config parser and validator on arbitrary text: a config is accepted or refused with
//! errors that each name a key, never a panic; an accepted one builds its route table.
#![no_main]
use anygate::config::{parse, Host};
use anygate::preflight;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = Host {
        cores: vec![0, 1, 2, 3],
    };
    match parse(text, &host) {
        Ok(cfg) => {
            // What `check` and `run` do next: the route table, with stand-in MACs.
            let _ = preflight::check(cfg);
        }
        Err(errs) => assert!(!errs.0.is_empty()),
    }
});
