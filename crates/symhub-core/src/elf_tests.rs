//! Tests of [`super`] against real files made by Debian's gcc 12 (`tests/fixtures/elf`, see
//! its README for how they were built) and against damaged copies of them.

use super::*;

const HELLO: &[u8] = include_bytes!("../../../tests/fixtures/elf/hello");
const HELLO_DEBUG: &[u8] = include_bytes!("../../../tests/fixtures/elf/hello.debug");
const LIBGREET: &[u8] = include_bytes!("../../../tests/fixtures/elf/libgreet.so.1");

/// `eu-readelf -n` (elfutils 0.188) of `hello` and `hello.debug`: "Build ID: …".
const HELLO_ID: &str = "fb89faed92941c861f194450d2f07cf0b1d2caec";
/// `eu-readelf -n libgreet.so.1`.
const LIBGREET_ID: &str = "cdf5d61939d696aebb337a003e27f64cce761918";

#[test]
fn stripped_executable() {
    let f = ElfFile::parse(HELLO).unwrap();
    assert_eq!(f.debuginfod_build_id().unwrap().as_str(), HELLO_ID);
    assert_eq!(f.build_id().unwrap().len(), 20);
    assert!(f.is_executable());
    assert!(!f.has_debug_info());
    assert_eq!(f.soname(), None);
    // `eu-readelf -S`: .text is PROGBITS of 0x131 bytes at 0x1050.
    assert_eq!(f.section(".text"), Some(&HELLO[0x1050..0x1050 + 0x131]));
    assert_eq!(f.section(".debug_info"), None);
    // objcopy --add-gnu-debuglink: the name, NUL, padding, CRC32.
    assert!(f
        .section(".gnu_debuglink")
        .unwrap()
        .starts_with(b"hello.debug\0"));
    assert_eq!(
        f.section(".interp"),
        Some(&b"/lib64/ld-linux-x86-64.so.2\0"[..])
    );
    // Exact names only: no prefix or suffix matches, no empty name.
    for other in [".tex", ".text2", "text", "", ".TEXT", ".zdebug_info"] {
        assert_eq!(f.section(other), None, "{other:?}");
    }
}

#[test]
fn split_debug_file() {
    let f = ElfFile::parse(HELLO_DEBUG).unwrap();
    assert_eq!(
        f.debuginfod_build_id().unwrap().as_str(),
        HELLO_ID,
        "the .debug file shares its binary's id"
    );
    assert!(f.has_debug_info());
    assert!(
        !f.is_executable(),
        "--only-keep-debug leaves .text as NOBITS"
    );
    assert_eq!(f.section(".text"), None);
    assert_eq!(f.section(".bss"), None);
    assert_eq!(f.section(".dynamic"), None);
    assert_eq!(f.soname(), None);
    // `eu-readelf -S hello.debug`: .debug_info is PROGBITS of 0x103 bytes at 0x3f3.
    assert_eq!(
        f.section(".debug_info"),
        Some(&HELLO_DEBUG[0x3f3..0x3f3 + 0x103])
    );
    assert!(f
        .section(".note.gnu.build-id")
        .unwrap()
        .ends_with(&hex_bytes(HELLO_ID)));
}

#[test]
fn shared_library_with_compressed_dwarf() {
    let f = ElfFile::parse(LIBGREET).unwrap();
    assert_eq!(f.debuginfod_build_id().unwrap().as_str(), LIBGREET_ID);
    assert_eq!(f.soname(), Some("libgreet.so.1"));
    assert!(f.is_executable());
    assert!(f.has_debug_info(), "SHF_COMPRESSED .debug_info counts");
    // Served as stored: Elf64_Chdr (ch_type 1 = ELFCOMPRESS_ZLIB, ch_size 0x66) then the
    // zlib stream; 89 bytes, exactly what elfutils' debuginfod 0.188 answered for
    // `section/.debug_info` of this file.
    let s = f.section(".debug_info").unwrap();
    assert_eq!(s.len(), 89);
    assert_eq!(&s[..4], &[1, 0, 0, 0]);
    assert_eq!(&s[8..16], &0x66u64.to_le_bytes());
    assert_eq!(&s[24..26], &[0x78, 0x9c], "zlib header");
}

#[test]
fn without_section_headers_the_id_comes_from_pt_note() {
    let mut data = HELLO.to_vec();
    data[0x28..0x30].fill(0); // e_shoff
    data[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    let f = ElfFile::parse(&data).unwrap();
    assert_eq!(f.debuginfod_build_id().unwrap().as_str(), HELLO_ID);
    // Everything else needs sections.
    assert!(!f.is_executable());
    assert_eq!(f.section(".text"), None);
}

#[test]
fn damaged_notes_hide_the_id_without_failing() {
    let mut data = HELLO.to_vec();
    // The build-id note's n_descsz (`.note.gnu.build-id` at 0x358): far past the section.
    data[0x358 + 4..0x358 + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let f = ElfFile::parse(&data).unwrap();
    assert_eq!(f.build_id(), None);
    assert!(f.is_executable());
    // A note named "GNU" without its NUL is not elfutils' GNU note.
    let mut data = HELLO.to_vec();
    data[0x358..0x35c].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(ElfFile::parse(&data).unwrap().build_id(), None);
}

#[test]
fn not_elf() {
    assert_eq!(ElfFile::parse(b"").unwrap_err(), ElfError::NotElf);
    assert_eq!(ElfFile::parse(b"\x7fEL").unwrap_err(), ElfError::NotElf);
    assert_eq!(ElfFile::parse(b"MZ\x90\0").unwrap_err(), ElfError::NotElf);
    assert_eq!(
        ElfFile::parse(b"\x7fELF").unwrap_err(),
        ElfError::Unsupported
    );
    let mut bad_class = HELLO[..64].to_vec();
    bad_class[4] = 3;
    assert_eq!(
        ElfFile::parse(&bad_class).unwrap_err(),
        ElfError::Unsupported
    );
    let mut bad_order = HELLO[..64].to_vec();
    bad_order[5] = 7;
    assert_eq!(
        ElfFile::parse(&bad_order).unwrap_err(),
        ElfError::Unsupported
    );
    // The section header table is at the end: a truncated file is malformed, not "no sections".
    let truncated = &HELLO[..HELLO.len() - 100];
    assert!(matches!(
        ElfFile::parse(truncated),
        Err(ElfError::Malformed(_))
    ));
}

#[test]
fn hostile_copies_never_panic() {
    // Every prefix, and every single-byte change in the headers and tables, of all three
    // fixtures (the fuzz target `elf` goes further).
    for file in [HELLO, HELLO_DEBUG, LIBGREET] {
        for len in (0..file.len()).step_by(13) {
            exercise(&file[..len]);
        }
        let hot = (0..0x400).chain(file.len().saturating_sub(0x800)..file.len());
        for at in hot {
            let mut data = file.to_vec();
            for v in [0x00, 0xff, data[at] ^ 0x80] {
                data[at] = v;
                exercise(&data);
            }
        }
    }
    // Misaligned input (a slice starting at an odd address) is read the same way.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(LIBGREET);
    let f = ElfFile::parse(&shifted[1..]).unwrap();
    assert_eq!(f.soname(), Some("libgreet.so.1"));
}

fn exercise(data: &[u8]) {
    if let Ok(f) = ElfFile::parse(data) {
        let _ = (f.build_id(), f.debuginfod_build_id(), f.soname());
        let _ = (f.has_debug_info(), f.is_executable());
        for name in [".text", ".debug_info", ".dynamic", ""] {
            if let Some(s) = f.section(name) {
                assert!(!s.is_empty());
            }
        }
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    crate::debuginfod::BuildId::parse_hex(s).unwrap().to_bytes()
}
