//! Any text given as a scenario file: validation reports errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hookbench::scenario::parse_str(text, std::path::Path::new("fuzz.yaml"), &|_| None);
    }
});
