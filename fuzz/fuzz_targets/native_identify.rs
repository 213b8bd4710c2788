//! Native debug file identification (PE, Windows PDB, portable PDB, ELF, Mach-O, fat Mach-O)
//! of any bytes: never panics, reads the same through a slice and through `object`'s
//! `ReadCache` (what the server does with a received file), and what it returns is usable —
//! every object has a key and a lower-case index id, an embedded stream starts in the file.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use object::read::ReadCache;
use symhub_core::native::{identify, Format};

fuzz_target!(|data: &[u8]| {
    let format = Format::sniff(data);
    let direct = identify(data, "x");
    let cache = ReadCache::new(Cursor::new(data));
    let cached = identify(&cache, "x");
    assert_eq!(direct, cached, "a slice and a ReadCache read the same");
    let Ok(found) = direct else {
        return;
    };
    assert!(format.is_some(), "only a sniffed format is identified");
    let len = data.len() as u64;
    for o in &found.objects {
        assert!(!o.keys.is_empty(), "every object has a key");
        assert!(!o.index_id.chars().any(|c| c.is_ascii_uppercase()));
    }
    for e in &found.embedded {
        // Its `MPDB` header was read from the file; the lengths are the file's claims, which
        // the server bounds when it unpacks.
        assert!(e.deflated.0 <= len);
        assert!(!e.name.is_empty());
    }
});
