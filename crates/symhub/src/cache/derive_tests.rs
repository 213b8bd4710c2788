//! Which debug file each `.sym` key is made from ([`super::recipes`]), and the converter tag.

use super::*;

fn key(s: &str) -> SymbolKey {
    SymbolKey::parse_path(s).unwrap()
}

#[test]
fn a_pdb_sym_comes_from_its_pdb() {
    let r = recipes(
        &key("ntdll.pdb/1EB9FACB04EA273BB24BA52C8B9F6F2D1/ntdll.sym"),
        None,
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].debug.normalized(),
        "ntdll.pdb/1eb9facb04ea273bb24ba52c8b9f6f2d1/ntdll.pdb"
    );
    assert_eq!(r[0].expect, "1EB9FACB04EA273BB24BA52C8B9F6F2D1");
}

#[test]
fn an_elf_breakpad_id_spells_a_16_byte_build_id() {
    let build_id = hex::decode("00112233445566778899aabbccddeeff").unwrap();
    let id = symhub_core::native::elf_breakpad_id(&build_id);
    let r = recipes(&key(&format!("libfoo.so/{id}/libfoo.so.sym")), None);
    assert!(r[0]
        .debug
        .normalized()
        .starts_with("_.debug/elf-buildid-sym-00112233445566778899aabbccddeeff"));
    assert_eq!(r[0].expect, id);
    // The same id is tried as a Mach-O UUID after.
    assert!(r[1]
        .debug
        .normalized()
        .starts_with("_.dwarf/mach-uuid-sym-"));
    let short = symhub_core::native::elf_breakpad_id(&build_id[..8]);
    assert_eq!(
        elf_build_id_of(&short[..32]).unwrap().as_str(),
        "0011223344556677"
    );
}

#[test]
fn a_breakpad_id_uses_the_20_byte_build_id_a_request_names_if_it_is_the_modules() {
    let bytes = hex::decode("0123456789abcdef0123456789abcdef01234567").unwrap();
    let id = symhub_core::native::elf_breakpad_id(&bytes);
    let sym = key(&format!("libfoo.so/{id}/libfoo.so.sym"));
    let mut headers = HeaderMap::new();
    hint_code(
        &mut headers,
        "libfoo.so",
        &hex::encode(&bytes).to_uppercase(),
    );
    let named = hinted_build_id(&headers).unwrap();
    let r = recipes(&sym, Some(&named));
    assert!(r[0].debug.normalized().contains(&hex::encode(&bytes)));
    assert!(r[0]
        .binary
        .as_ref()
        .unwrap()
        .normalized()
        .contains(named.as_str()));
    assert_eq!(r[0].expect, id);
    // Without it, or with another module's, only the 16 bytes the id keeps are tried.
    let other = BuildId::parse_hex("ff23456789abcdef0123456789abcdef01234567").unwrap();
    for r in [recipes(&sym, None), recipes(&sym, Some(&other))] {
        assert!(r.iter().all(|r| !r
            .binary
            .as_ref()
            .is_some_and(|b| b.id().contains(named.as_str()))));
    }
    // A PE code id is not a build id.
    let mut pe = HeaderMap::new();
    hint_code(&mut pe, "foo.dll", "5F00AA1000");
    assert!(hinted_build_id(&pe).is_none());
}

#[test]
fn a_code_id_form_names_the_build_id() {
    let id = "0123456789abcdef0123456789abcdef01234567";
    let r = recipes(&key(&format!("libfoo.so/{id}/libfoo.so.sym")), None);
    assert_eq!(r.len(), 1);
    assert!(r[0].debug.normalized().contains(id));
    assert!(r[0].binary.as_ref().unwrap().normalized().contains(id));
}

#[test]
fn a_pdb_age_of_16_or_more_is_a_longer_id() {
    let r = recipes(
        &key("foo.pdb/9214611565FA4C538FE724A797B860F710/foo.sym"),
        None,
    );
    assert_eq!(r[0].expect, "9214611565FA4C538FE724A797B860F710");
    // rust-minidump's code-info name of a DLL's `.sym` is made from an ELF-style id too.
    let id = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        recipes(&key(&format!("foo.dll/{id}/foo.sym")), None).len(),
        1
    );
}

#[test]
fn other_keys_have_no_recipe() {
    for k in [
        "ntdll.pdb/1EB9FACB04EA273BB24BA52C8B9F6F2D1/ntdll.pdb",
        "ntdll.pdb/nothex/ntdll.sym",
        "12387532",
        // Not the module's Breakpad name: the same file again under another key.
        "ntdll.pdb/1EB9FACB04EA273BB24BA52C8B9F6F2D1/other.sym",
        "libfoo.so/0123456789abcdef0123456789abcdef01234567/libfoo.sym",
        // A PE's code id is no build id.
        "foo.dll/5A9832E51A000/foo.sym",
    ] {
        assert!(recipes(&key(k), None).is_empty(), "{k}");
    }
}

#[test]
fn the_converter_tag_names_the_locked_dump_syms() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let at = lock
        .find("name = \"dump_syms\"")
        .expect("dump_syms in Cargo.lock");
    let version = lock[at..].lines().nth(1).unwrap();
    let version = version.trim_start_matches("version = ").trim_matches('"');
    assert!(
        CONVERTER.starts_with(&format!("dump_syms-{version}+")),
        "bump CONVERTER to dump_syms-{version}: derived .sym files must be made again"
    );
    assert!(is_stale("derived:dump_syms-0.1+symhub.1"));
    assert!(is_stale("derived:dump_syms-0.1+symhub.1 without binary"));
    assert!(!is_stale(&derived_tag(false)));
    assert!(!is_stale(&derived_tag(true)));
    assert!(!is_stale("microsoft"));
    assert!(remake(&derived_tag(true), true));
    assert!(!remake(&derived_tag(true), false));
    assert!(!remake(&derived_tag(false), true));
    assert!(!remake("microsoft without binary", true));
}
