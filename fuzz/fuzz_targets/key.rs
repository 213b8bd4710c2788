//! The request-path parser: never panics, its shortcut for plain paths answers what the full
//! parse answers, and a key's own URL form parses back to it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub_core::key::MAX_SEGMENTS;
use symhub_core::{Spelling, SymbolKey};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SymbolKey::parse_path(path);
    if path.len() <= symhub_core::key::MAX_RAW_PATH_LEN {
        let raw = path.strip_prefix('/').unwrap_or(path);
        let full = SymbolKey::parse_path_in_full(raw);
        match (&parsed, &full) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b);
                assert_eq!(a.segment_count(), b.segment_count());
            }
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err()),
        }
    }
    if let Ok(key) = parsed {
        let slashes = key.normalized().matches('/').count();
        assert!(slashes < MAX_SEGMENTS);
        assert_eq!(slashes + 1, key.segment_count());
        assert_eq!(key.segments().count(), key.segment_count());
        let again = SymbolKey::parse_path(&key.url_path(Spelling::AsRequested))
            .expect("a key's own URL path parses");
        assert_eq!(again.to_string(), key.to_string());
        let _ = key.compressed_variant();
        let _ = key.url_path(Spelling::SymSrv);
    }
});
