//! The `.sym` header parser: never panics, and what it accepts has a valid serving key and
//! matches itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub_core::breakpad::parse_sym_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_sym_header(data) {
        assert!(h.key().is_ok());
        assert!(h.matches(&h.debug_file, &h.debug_id));
    }
});
