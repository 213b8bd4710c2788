//! ELF identification: never panics on any bytes, and everything it returns is a non-empty
//! slice of the input itself (nothing is copied, decompressed or read out of bounds).
#![no_main]
use libfuzzer_sys::fuzz_target;
use symhub_core::elf::ElfFile;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = ElfFile::parse(data) else {
        return;
    };
    let inside = |s: &[u8]| {
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let p = s.as_ptr() as usize;
        assert!(p >= start && p + s.len() <= end, "a slice of the input");
    };
    if let Some(id) = f.build_id() {
        assert!(!id.is_empty());
        inside(id);
        if let Some(b) = f.debuginfod_build_id() {
            assert_eq!(b.to_bytes(), id);
        }
    }
    if let Some(name) = f.soname() {
        inside(name.as_bytes());
        assert!(!name.contains('\0'));
    }
    let _ = (f.has_debug_info(), f.is_executable());
    for name in [
        ".text",
        ".debug_info",
        ".zdebug_info",
        ".note.gnu.build-id",
        ".dynamic",
        "",
    ] {
        if let Some(s) = f.section(name) {
            assert!(!s.is_empty());
            inside(s);
        }
    }
});
