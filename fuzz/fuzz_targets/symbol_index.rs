//! `symbol_index.json` of a package: the input is the index, inside an otherwise valid zip
//! with blobs `a` and `b/c`. Never panics; an accepted plan only names entries that exist.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use symhub::config::PackageConfig;
use symhub::package::archive::inspect;

fuzz_target!(|data: &[u8]| {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [("symbol_index.json", data), ("a", b"1".as_slice()), ("b/c", b"2")] {
        w.start_file(name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    let mut zip = w.finish_into_readable().unwrap();
    if let Ok(plan) = inspect(&mut zip, &PackageConfig::default()) {
        for m in &plan.explicit {
            assert!((m.entry as usize) < plan.names.len());
        }
    }
});
