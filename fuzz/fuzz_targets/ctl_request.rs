//! The control protocol's request parser on arbitrary lines: refused with a reason or
//! accepted, never a panic; an accepted request survives a round trip through its own
//! serialisation unchanged.
#![no_main]
use anygate::ctl_proto::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(req) => {
            let line = req.to_line();
            let again = Request::parse(line.trim_end().as_bytes())
                .unwrap_or_else(|e| panic!("own serialisation refused: {e}: {line}"));
            assert_eq!(again.to_line(), line);
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
