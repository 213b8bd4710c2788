//! Identification of the repository's real fixtures, checked against what independent tools
//! wrote about them: the MODULE and INFO lines of the `.sym` files Breakpad's own dump_syms
//! made from the Windows fixtures, and `eu-readelf -n` for the ELF ones (tests/fixtures).

use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    std::fs::read(format!("{root}{path}")).unwrap()
}

fn keys(o: &DebugObject) -> Vec<String> {
    o.keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn pe_is_keyed_by_timestamp_and_size_and_names_its_pdb() {
    let bytes = fixture("windows/dump_syms_regtest64.exe");
    let found = identify(&bytes[..], "dump_syms_regtest64.exe").unwrap();
    let pe = &found.objects[0];
    // dump_syms_regtest64.sym: `INFO CODE_ID 589DFD111A000 dump_syms_regtest64.exe`.
    assert_eq!(pe.code_id.as_deref(), Some("589DFD111a000"));
    assert_eq!(
        keys(pe),
        ["dump_syms_regtest64.exe/589DFD111a000/dump_syms_regtest64.exe"]
    );
    // `MODULE windows x86_64 72E103A85CB249078B76B2E7C06257B13 dump_syms_regtest64.pdb`.
    assert_eq!(pe.debug_id, "72E103A85CB249078B76B2E7C06257B13");
    assert_eq!(pe.debug_file, "dump_syms_regtest64.pdb");
    assert_eq!(pe.arch.as_deref(), Some("x86_64"));
    assert!(found.embedded.is_empty());
}

#[test]
fn pdb_is_keyed_by_guid_and_age() {
    for (file, id, arch) in [
        (
            "dump_syms_regtest64.pdb",
            "72E103A85CB249078B76B2E7C06257B13",
            "x86_64",
        ),
        (
            "dump_syms_regtest.pdb",
            "9214611565FA4C538FE724A797B860F71",
            "x86",
        ),
    ] {
        let bytes = fixture(&format!("windows/{file}"));
        let found = identify(&bytes[..], file).unwrap();
        let pdb = &found.objects[0];
        assert_eq!(pdb.debug_id, id);
        assert_eq!(keys(pdb), [format!("{file}/{id}/{file}")]);
        let sym = file.replace(".pdb", ".sym");
        assert_eq!(
            pdb.breakpad_key.as_ref().unwrap().to_string(),
            format!("{file}/{id}/{sym}")
        );
        assert!(pdb.has_debug_info);
        assert_eq!(pdb.arch.as_deref(), Some(arch));
    }
}

#[test]
fn portable_pdb_and_its_dll() {
    let pdb = fixture("dotnet/System.Threading.Thread.pdb");
    let found = identify(&pdb[..], "System.Threading.Thread.pdb").unwrap();
    let key = &keys(&found.objects[0])[0];
    assert!(
        key.starts_with("System.Threading.Thread.pdb/") && key.contains("FFFFFFFF"),
        "{key}"
    );
    let dll = fixture("dotnet/System.Threading.Thread.dll");
    let found = identify(&dll[..], "System.Threading.Thread.dll").unwrap();
    assert_eq!(found.objects[0].format, Format::Pe);
    // The DLL's CodeView record names the same PDB id as the PDB's own #Pdb stream.
    let pdb_id = key
        .split('/')
        .nth(1)
        .unwrap()
        .trim_end_matches("FFFFFFFF")
        .to_ascii_uppercase();
    assert!(
        found.objects[0].debug_id.starts_with(&pdb_id),
        "{} vs {pdb_id}",
        found.objects[0].debug_id
    );
}

#[test]
fn elf_binary_and_split_debug_file() {
    // `eu-readelf -n tests/fixtures/elf/hello` prints this build id.
    let exe = fixture("elf/hello");
    let elf = crate::elf::ElfFile::parse(&exe).unwrap();
    let id: String = elf
        .build_id()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let found = identify(&exe[..], "hello").unwrap();
    let o = &found.objects[0];
    assert_eq!(keys(o), [format!("hello/elf-buildid-{id}/hello")]);
    assert!(!o.has_debug_info);
    assert_eq!(o.code_id.as_deref(), Some(id.as_str()));
    assert_eq!(o.arch.as_deref(), Some("x86_64"));
    let debug = fixture("elf/hello.debug");
    let found = identify(&debug[..], "hello.debug").unwrap();
    let d = &found.objects[0];
    assert_eq!(keys(d), [format!("_.debug/elf-buildid-sym-{id}/_.debug")]);
    assert!(d.has_debug_info);
    // Breakpad names the module after the binary, for the split file too.
    assert_eq!(d.debug_file, "hello");
    assert_eq!(d.debug_id, o.debug_id);
    assert_eq!(
        d.breakpad_key.as_ref().unwrap().to_string(),
        format!("hello/{}/hello.sym", o.debug_id)
    );
}

#[test]
fn breakpad_id_of_a_build_id_swaps_the_guid_fields() {
    // Breakpad's FileID::ConvertIdentifierToUUIDString on a 20-byte id.
    let id = hex_bytes("b7dc60e91588d8a54c4c44205044454c80bad00d");
    assert_eq!(elf_breakpad_id(&id), "E960DCB78815A5D84C4C44205044454C0");
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn sniffing_ignores_names_and_refuses_what_it_does_not_know() {
    assert_eq!(
        Format::sniff(b"MODULE Linux x86_64 ABC a"),
        Some(Format::Breakpad)
    );
    assert_eq!(Format::sniff(b"PK\x03\x04rest"), Some(Format::Zip));
    assert_eq!(
        Format::sniff(b"\xca\xfe\xba\xbe\0\0\0\x34"),
        None,
        "a Java class file"
    );
    assert_eq!(Format::sniff(b"hello"), None);
    assert!(matches!(
        identify(&b"MZ\0\0"[..], "x.exe"),
        Err(IdentifyError::Malformed(Format::Pe, _))
    ));
    assert_eq!(
        identify(&b"#!/bin/sh\n"[..], "x.exe"),
        Err(IdentifyError::Unknown)
    );
}

#[test]
fn truncated_files_are_errors_not_panics() {
    for path in [
        "windows/dump_syms_regtest64.exe",
        "windows/dump_syms_regtest64.pdb",
        "dotnet/System.Threading.Thread.dll",
        "dotnet/System.Threading.Thread.pdb",
        "elf/hello",
        "elf/hello.debug",
    ] {
        let bytes = fixture(path);
        for cut in [
            0,
            1,
            4,
            63,
            64,
            200,
            1024,
            4096,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let found = identify(&bytes[..cut.min(bytes.len())], "x");
            // A cut copy is refused, never keyed: it would be served broken.
            assert!(found.is_err(), "{path} cut at {cut}: {found:?}");
        }
        assert!(identify(&bytes[..], "x").is_ok());
    }
}

/// A 12 KiB MSF file whose stream directory claims 256 MiB, made of its third page listed
/// 65536 times (the `pdb` crate allocated and zero-filled such a view before reading it;
/// symhub's own reader never reads a stream whole).
fn pdb_with_a_repeated_page_directory() -> Vec<u8> {
    const PAGE: usize = 4096;
    let directory_size: u32 = 256 << 20;
    let directory_pages = directory_size as usize / PAGE;
    let list_pages = directory_pages * 4 / PAGE;
    let mut file = vec![0u8; 3 * PAGE];
    file[..32].copy_from_slice(MSF_MAGIC);
    for (i, v) in [PAGE as u32, 1, 3, directory_size, 0]
        .into_iter()
        .enumerate()
    {
        file[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    // The header lists the pages of the directory's page list: page 1, every time.
    for i in 0..list_pages {
        file[52 + 4 * i..56 + 4 * i].copy_from_slice(&1u32.to_le_bytes());
    }
    // Page 1, the directory's page list: page 2, every time.
    for i in 0..PAGE / 4 {
        file[PAGE + 4 * i..PAGE + 4 * i + 4].copy_from_slice(&2u32.to_le_bytes());
    }
    // Page 2: a directory of 4 empty streams.
    file[2 * PAGE..2 * PAGE + 4].copy_from_slice(&4u32.to_le_bytes());
    file
}

#[test]
fn a_pdb_view_larger_than_the_file_is_refused_before_it_is_allocated() {
    let bytes = pdb_with_a_repeated_page_directory();
    let cache = object::read::ReadCache::new(std::io::Cursor::new(&bytes[..]));
    for found in [identify(&bytes[..], "x.pdb"), identify(&cache, "x.pdb")] {
        match found {
            Err(IdentifyError::Malformed(Format::Pdb, e)) => {
                assert!(e.contains("stream directory"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
