//! The lenient (not-quite-JSON) body of sym-upload-v2's `:complete`: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = symhub_core::breakpad::parse_complete(text);
    }
});
