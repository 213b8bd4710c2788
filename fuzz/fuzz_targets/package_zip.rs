//! A whole package file, hostile: the zip reader and every check before extraction.
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub::config::PackageConfig;
use symhub::package::archive::inspect;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(data)) {
        let _ = inspect(&mut zip, &PackageConfig::default());
    }
});
