//! Tests of `key.rs`: parsing, validation, normalization and the SymSrv spellings.

use super::*;

/// A path without `%` takes the fast path; the same path with one character encoded
/// takes the decoding one: both answer alike, keys and errors.
#[test]
fn the_undecoded_path_is_parsed_as_the_decoded_one() {
    for raw in [
        "/a.pdb/ABC1/a.pdb",
        "/ntdll.pdb/1B4E0E8A9E8A4B2D9C0A3E1F2D3C4B5A1/ntdll.pdb",
        "/index2.txt",
        "/000Admin/history.txt",
        "/INDEX2.TXT//x",
        "/a.pdb//a.pdb",
        "/a.pdb/../a.pdb",
        "/a.pdb/1/refs.ptr",
        "/12387532",
        "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q",
        "/a.pdb/x\\y/a.pdb",
        "",
        "/",
    ] {
        // `a` → `%61` where there is one; else the first letter of any kind.
        let Some(at) = raw.find(|c: char| c.is_ascii_alphabetic()) else {
            continue;
        };
        let c = raw.as_bytes()[at];
        let encoded = format!("{}%{c:02X}{}", &raw[..at], &raw[at + 1..]);
        assert_eq!(
            SymbolKey::parse_path(raw),
            SymbolKey::parse_path(&encoded),
            "{raw} vs {encoded}"
        );
    }
}

const PDB: &str = "Foo.PDB/ABCDEF0123456789ABCDEF01234567891/Foo.PDB";

#[test]
fn client_keys_are_taken_literally() {
    let k = SymbolKey::parse_client_key("a%41b/12-09").unwrap();
    assert_eq!(k.to_string(), "a%41b/12-09");
    assert_eq!(
        SymbolKey::parse_path("/a%2541b/12-09")
            .unwrap()
            .normalized(),
        k.normalized()
    );
    assert!(SymbolKey::parse_client_key("a/../b").is_err());
    assert!(SymbolKey::parse_client_key("index2.txt").is_err());
}

#[test]
fn both_spellings_come_back_whole() {
    // One buffer holds both: each construction path must split it where the spelling ends.
    let cases = [
        (
            "/Foo.PDB/AB12/Foo.PDB",
            "Foo.PDB/AB12/Foo.PDB",
            "foo.pdb/ab12/foo.pdb",
        ),
        (
            "Foo.PDB/AB%31/Foo.PDB",
            "Foo.PDB/AB1/Foo.PDB",
            "foo.pdb/ab1/foo.pdb",
        ),
        (
            "%C3%84rger.PDB/1/%C3%84rger.PDB",
            "Ärger.PDB/1/Ärger.PDB",
            "ärger.pdb/1/ärger.pdb",
        ),
        ("12387532", "12387532", "12387532"),
    ];
    for (path, display, normalized) in cases {
        let k = SymbolKey::parse_path(path).unwrap();
        assert_eq!(
            (k.as_str(), k.normalized()),
            (display, normalized),
            "{path}"
        );
        assert_eq!(k.name(), display.rsplit('/').next().unwrap(), "{path}");
        let clone = k.clone();
        assert_eq!(clone, k);
        assert_eq!(clone.normalized(), normalized);
    }
    let k = SymbolKey::from_segments("Ärger.PDB", "AB", "Ärger.PDB").unwrap();
    assert_eq!(k.as_str(), "Ärger.PDB/AB/Ärger.PDB");
    assert_eq!(k.normalized(), "ärger.pdb/ab/ärger.pdb");
}

#[test]
fn greek_sigma_in_any_form_is_one_key() {
    // `ΑΣ`, `ασ` and `ας` differ only in case (a final sigma is a lowercase Σ).
    let keys = [
        "%CE%91%CE%A3/1/x.pdb",
        "%CE%B1%CF%83/1/x.pdb",
        "%CE%B1%CF%82/1/x.pdb",
    ];
    let normalized: Vec<String> = keys
        .iter()
        .map(|p| SymbolKey::parse_path(p).unwrap().normalized().to_owned())
        .collect();
    assert_eq!(normalized, ["ασ/1/x.pdb"; 3]);
}

#[test]
fn case_variants_share_the_normalized_form() {
    let a = SymbolKey::parse_path(PDB).unwrap();
    let b = SymbolKey::parse_path(&PDB.to_lowercase()).unwrap();
    assert_eq!(a.normalized(), b.normalized());
    assert_ne!(a.to_string(), b.to_string());
}

#[test]
fn percent_encoded_segments_are_decoded() {
    let k = SymbolKey::parse_path("/libstdc%2B%2B.so.6/ABC/libstdc++.so.6.sym").unwrap();
    assert_eq!(k.file(), "libstdc++.so.6");
    assert_eq!(k.name(), "libstdc++.so.6.sym");
}

#[test]
fn invalid_paths_are_refused() {
    let bad = [
        ("", KeyError::Empty(1)),
        ("/", KeyError::Empty(1)),
        ("a//c", KeyError::Empty(2)),
        ("a/b/", KeyError::Empty(3)),
        ("../b/c", KeyError::Traversal(1)),
        ("%2e%2e/b/c", KeyError::Traversal(1)),
        ("a/%2E/c", KeyError::Traversal(2)),
        ("a/b%2fc/d", KeyError::BadChar(2)),
        ("a/b/c%5c..", KeyError::BadChar(3)),
        ("a\\b/c/d", KeyError::BadChar(1)),
        ("a/b%00/c", KeyError::BadChar(2)),
        ("a/b%0a/c", KeyError::BadChar(2)),
        ("a/b%7f/c", KeyError::BadChar(2)),
        // A C1 control (U+0085, NEL): not ASCII, still a control character.
        ("a/%c2%85b/c", KeyError::BadChar(2)),
        ("a/%ff%fe/c", KeyError::NotUtf8(2)),
        ("a/%c0%ae%c0%ae/c", KeyError::NotUtf8(2)),
        ("index2.txt", KeyError::Bookkeeping),
        ("PINGME.TXT", KeyError::Bookkeeping),
        ("000Admin/history.txt/x", KeyError::Bookkeeping),
        ("%3000admin/e/b", KeyError::Bookkeeping),
    ];
    for (path, want) in bad {
        assert_eq!(SymbolKey::parse_path(path), Err(want), "{path}");
    }
    let long = format!("{}/b/c", "x".repeat(MAX_SEGMENT_LEN + 1));
    assert_eq!(
        SymbolKey::parse_path(&long),
        Err(KeyError::SegmentTooLong(1))
    );
    let huge = "a/".repeat(5000);
    assert_eq!(SymbolKey::parse_path(&huge), Err(KeyError::TooLong));
}

/// The SSQP package spec's own example keys, and other shapes than `<file>/<id>/<name>`.
#[test]
fn keys_of_one_to_sixteen_segments() {
    let one = SymbolKey::parse_path("/312%26312-123%2A%26%5Endw").unwrap();
    assert_eq!(one.to_string(), "312&312-123*&^ndw");
    assert_eq!(one.segments().collect::<Vec<_>>(), ["312&312-123*&^ndw"]);
    assert_eq!((one.segment_count(), one.is_triple()), (1, false));
    assert_eq!(
        (one.file(), one.id(), one.name()),
        (one.name(), "", "312&312-123*&^ndw")
    );
    let two = SymbolKey::parse_path("Content/Data.XML").unwrap();
    assert_eq!(
        (two.file(), two.id(), two.name()),
        ("Content", "", "Data.XML")
    );
    assert_eq!(two.normalized(), "content/data.xml");
    assert_eq!(two.extension().as_deref(), Some("xml"));
    let three = SymbolKey::parse_path("a.pdb/1/a.pdb").unwrap();
    assert!(three.is_triple());
    let five = SymbolKey::parse_path("A/b/C/d/E.pdb").unwrap();
    assert_eq!(five.segment_count(), 5);
    assert_eq!(
        (five.file(), five.id(), five.name()),
        ("A", "b/C/d", "E.pdb")
    );
    assert_eq!(five.normalized(), "a/b/c/d/e.pdb");
    let again = SymbolKey::from_decoded(five.segments()).unwrap();
    assert_eq!(again, five);
    let max = vec!["s"; MAX_SEGMENTS].join("/");
    assert!(SymbolKey::parse_path(&max).is_ok());
    assert_eq!(
        SymbolKey::parse_path(&format!("{max}/s")),
        Err(KeyError::SegmentCount(MAX_SEGMENTS + 1))
    );
    let empty: [&str; 0] = [];
    assert_eq!(
        SymbolKey::from_decoded(empty),
        Err(KeyError::SegmentCount(0))
    );
    // Five segments of 255 bytes each are fine alone, too long together.
    let seg = "x".repeat(MAX_SEGMENT_LEN);
    let long = [seg.as_str(); 5].join("/");
    assert_eq!(SymbolKey::parse_path(&long), Err(KeyError::KeyTooLong));
    let widest_triple = [seg.as_str(); 3].join("/");
    assert!(SymbolKey::parse_path(&widest_triple).is_ok());
}

/// Every rule holds for every segment of a key of any shape.
#[test]
fn non_triple_keys_follow_every_safety_rule() {
    let bad = [
        ("..", KeyError::Traversal(1)),
        ("%2E", KeyError::Traversal(1)),
        ("a/..", KeyError::Traversal(2)),
        ("a/./b/c/d", KeyError::Traversal(2)),
        ("a//b/c/d", KeyError::Empty(2)),
        ("a/b/c/d/", KeyError::Empty(5)),
        ("a%2Fb", KeyError::BadChar(1)),
        ("a/b/c/d%5Ce", KeyError::BadChar(4)),
        ("a\\b", KeyError::BadChar(1)),
        ("a%00", KeyError::BadChar(1)),
        ("a/b/c/d/e%7F", KeyError::BadChar(5)),
        ("%ff", KeyError::NotUtf8(1)),
        ("a/b/c/%c0%ae", KeyError::NotUtf8(4)),
        ("index.txt", KeyError::Bookkeeping),
        ("000admin/x", KeyError::Bookkeeping),
        ("Index2.TXT/a/b/c/d", KeyError::Bookkeeping),
        ("refs.ptr", KeyError::Bookkeeping),
        ("a/REFS.PTR", KeyError::Bookkeeping),
        ("a/b/c/d/refs.ptr", KeyError::Bookkeeping),
    ];
    for (path, want) in bad {
        assert_eq!(SymbolKey::parse_path(path), Err(want), "{path}");
    }
    let long = format!("a/{}", "x".repeat(MAX_SEGMENT_LEN + 1));
    assert_eq!(
        SymbolKey::parse_path(&long),
        Err(KeyError::SegmentTooLong(2))
    );
    assert_eq!(
        SymbolKey::from_decoded(["a/b"]),
        Err(KeyError::BadChar(1)),
        "a decoded segment never holds a slash"
    );
    // Bookkeeping names are refused where SymStore keeps them, not anywhere.
    assert!(SymbolKey::parse_path("a/index2.txt").is_ok());
    assert!(SymbolKey::parse_path("refs.ptr/a").is_ok());
}

#[test]
fn double_encoding_is_only_decoded_once() {
    let k = SymbolKey::parse_path("%252e%252e/b/c").unwrap();
    assert_eq!(k.file(), "%2e%2e");
    assert_eq!(k.url_path(Spelling::AsRequested), "%252e%252e/b/c");
}

#[test]
fn spellings() {
    let k = SymbolKey::parse_path("Foo.pdb/abcdef1/Foo.pdb").unwrap();
    assert_eq!(k.url_path(Spelling::AsRequested), "Foo.pdb/abcdef1/Foo.pdb");
    assert_eq!(k.url_path(Spelling::Lowercase), "foo.pdb/abcdef1/foo.pdb");
    assert_eq!(k.url_path(Spelling::SymSrv), "Foo.pdb/ABCDEF1/Foo.pdb");
    let pdb = SymbolKey::parse_path(&format!("Foo.pdb/{}A/Foo.pdb", "ab".repeat(16))).unwrap();
    assert_eq!(
        pdb.url_path(Spelling::SymSrv),
        format!("Foo.pdb/{}a/Foo.pdb", "AB".repeat(16))
    );
    let dll = SymbolKey::parse_path("renderdoc.dll/61015e74442b000/renderdoc.dll").unwrap();
    assert_eq!(
        dll.url_path(Spelling::SymSrv),
        "renderdoc.dll/61015E74442b000/renderdoc.dll"
    );
    let elf = SymbolKey::parse_path("_.debug/elf-buildid-sym-AB12/_.debug").unwrap();
    assert_eq!(
        elf.url_path(Spelling::SymSrv),
        "_.debug/elf-buildid-sym-ab12/_.debug"
    );
    let odd = SymbolKey::parse_path("a%20b.pdb/1/a%23b+c.pdb").unwrap();
    assert_eq!(
        odd.url_path(Spelling::AsRequested),
        "a%20b.pdb/1/a%23b%2Bc.pdb"
    );
    // Keys of other shapes have no kind: `symsrv` leaves them as they are.
    let one = SymbolKey::parse_path("Ab-12").unwrap();
    assert_eq!(one.url_path(Spelling::SymSrv), "Ab-12");
    assert_eq!(one.url_path(Spelling::Lowercase), "ab-12");
}

#[test]
fn compressed_variants() {
    let k = SymbolKey::parse_path("foo.pdb/1/foo.pdb").unwrap();
    let c = k.compressed_variant().unwrap();
    assert_eq!(c.to_string(), "foo.pdb/1/foo.pd_");
    assert!(c.is_compressed());
    assert!(c.compressed_variant().is_none());
    assert!(!k.is_compressed());
    let ptr = SymbolKey::parse_path("foo.pdb/1/file.ptr").unwrap();
    assert!(ptr.compressed_variant().is_none());
    let noext = SymbolKey::parse_path("foo/1/foo").unwrap();
    assert!(noext.compressed_variant().is_none());
    for other in [
        "foo.pdb/1/foo.sym",
        "libc.so/elf-buildid-ab/libc.so",
        "_.debug/elf-buildid-sym-ab/_.debug",
        "foo.dylib/mach-uuid-ab/foo.dylib",
        "foo.cs/sha1-ab/foo.cs",
        "foo.pdb",
        "a/foo.dll",
        "a/b/c/foo.pdb",
    ] {
        let k = SymbolKey::parse_path(other).unwrap();
        assert!(k.compressed_variant().is_none(), "{other}");
    }
    for windows in [
        "a.dll/1/A.DLL",
        "a.exe/1/a.exe",
        "a.sys/1/a.sys",
        "a.dbg/1/a.dbg",
    ] {
        let k = SymbolKey::parse_path(windows).unwrap();
        assert!(k.compressed_variant().is_some(), "{windows}");
    }
    assert!(!SymbolKey::parse_path("foo.pd_").unwrap().is_compressed());
}
