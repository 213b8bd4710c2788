//! How a key is spelled in the URL sent to one upstream (`key_spelling`): the casing of the id,
//! decided by the key's kind, and a percent-encoding that a byte-for-byte store (S3, GCS, a
//! plain file server, a store written by symstore.exe on a case-sensitive filesystem) decodes
//! back to exactly the stored name.
//!
//! `symsrv` spells ids the way symstore.exe writes them and WinDbg asks for them:
//!
//! | kind (how it is recognized) | id spelling | example |
//! |---|---|---|
//! | Breakpad (name ends in `.sym`, hex id) | all upper, as dump_syms writes it | `foo.pdb/3F2A…C1/foo.sym` |
//! | PDB (file `*.pdb`, hex id of 33+ digits) | GUID (32 digits) upper, age `%x` lower | `foo.pdb/3F2A…C1a/foo.pdb` |
//! | portable PDB (a PDB whose age is `ffffffff`) | GUID upper, `FFFFFFFF` | `foo.pdb/3F2A…C1FFFFFFFF/foo.pdb` |
//! | PE image (file `*.exe`, `*.dll`, `*.sys`, …) and DBG, old NB10 PDB (hex id of 9+ digits) | `%08X%x`: timestamp upper, size lower | `foo.dll/61015E74442b000/foo.dll` |
//! | any other hex id | all upper | |
//! | not plain hex (`elf-buildid-…`, `mach-uuid-…`, `sha1-…`) | lower, as the SSQP conventions say | `libfoo.so/elf-buildid-ab12…/libfoo.so` |
//!
//! File and name segments keep the client's spelling in every mode but `lowercase`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::key::CAB_KINDS;

/// How a key is spelled in the URL sent to one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Spelling {
    /// Exactly as the client sent it (after percent-decoding).
    #[default]
    AsRequested,
    /// Everything lowercase, as the SSQP spec recommends and dotnet-symbol sends.
    Lowercase,
    /// As symstore.exe writes it and WinDbg asks for it: file names as given, the id cased by
    /// the key's kind (see the module notes).
    SymSrv,
}

/// Characters escaped in a key segment put into an upstream URL: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`), as dotnet-symbol (`Uri.EscapeDataString`
/// per segment) and Mozilla Tecken (`urllib.parse.quote`) do. `+` above all must be `%2B`:
/// S3 decodes a `+` in a path to a space, so `libstdc++.so.6` would be looked up as
/// `libstdc  .so.6` (Tecken bug 1848567, mozilla-services/tecken PR #2777: unquoted `+`
/// "get[s] back an HTTP 404 from AWS S3 even if the file is there"; Automattic/knox PR #267:
/// "S3 converts them all to spaces").
const SEGMENT_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `segment`, percent-encoded for a URL path, to `out`.
pub(crate) fn encode_segment(segment: &str, out: &mut String) {
    out.extend(utf8_percent_encode(segment, SEGMENT_ESCAPE));
}

/// The id of `<file>/<id>/<name>` as SymSrv spells it (see the module notes).
pub(crate) fn symsrv_id(file: &str, id: &str, name: &str) -> String {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return id.to_lowercase();
    }
    let ext = |s: &str| {
        s.rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default()
    };
    if ext(name) == "sym" {
        return id.to_ascii_uppercase();
    }
    let kind = ext(file);
    // Where the upper-case part (GUID or timestamp) ends and the `%x` part (age or size) begins.
    let split = match kind.as_str() {
        "pdb" if id.len() > 32 => 32,
        // A PE image's `%08X%x`, and an NB10 PDB's signature `%08X` + age `%x`.
        k if (k == "pdb" || CAB_KINDS.contains(&k)) && id.len() > 8 => 8,
        _ => id.len(),
    };
    let (upper, lower) = id.split_at(split);
    let mut out = upper.to_ascii_uppercase();
    // A portable PDB's "age" is the marker every convention writes as `FFFFFFFF`.
    if split == 32 && lower.eq_ignore_ascii_case("ffffffff") {
        out.push_str("FFFFFFFF");
    } else {
        out.push_str(&lower.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789ABCDEF0123456789ABCDEF";

    #[test]
    fn symsrv_ids_by_kind() {
        let pdb_age_10 = format!("{GUID}A");
        let cases = [
            (
                "foo.pdb",
                pdb_age_10.as_str(),
                "foo.pdb",
                format!("{GUID}a"),
            ),
            (
                "foo.pdb",
                &pdb_age_10.to_lowercase(),
                "foo.pd_",
                format!("{GUID}a"),
            ),
            (
                "foo.pdb",
                &format!("{GUID}1f"),
                "file.ptr",
                format!("{GUID}1f"),
            ),
            (
                "foo.pdb",
                &format!("{}ffffffff", GUID.to_lowercase()),
                "foo.pdb",
                format!("{GUID}FFFFFFFF"),
            ),
            (
                "foo.pdb",
                &format!("{GUID}0"),
                "foo.sym",
                format!("{GUID}0"),
            ),
            (
                "foo.pdb",
                &format!("{}0", GUID.to_lowercase()),
                "FOO.SYM",
                format!("{GUID}0"),
            ),
            (
                "renderdoc.dll",
                "61015e74442B000",
                "renderdoc.dll",
                "61015E74442b000".into(),
            ),
            ("a.EXE", "5f00aa10c", "a.ex_", "5F00AA10c".into()),
            ("a.sys", "abcdef12", "a.sys", "ABCDEF12".into()),
            ("old.pdb", "3b7d84101", "old.pdb", "3B7D84101".into()),
            ("x", "abc1", "x", "ABC1".into()),
            (
                "libc.so",
                "elf-buildid-AB12",
                "libc.so",
                "elf-buildid-ab12".into(),
            ),
            (
                "a.dylib",
                "mach-uuid-ABCD",
                "a.dylib",
                "mach-uuid-abcd".into(),
            ),
            ("a.cs", "SHA1-Ab", "a.cs", "sha1-ab".into()),
        ];
        for (file, id, name, want) in cases {
            assert_eq!(symsrv_id(file, id, name), want, "{file}/{id}/{name}");
        }
    }

    #[test]
    fn segments_keep_only_unreserved_characters() {
        let mut out = String::new();
        encode_segment("libstdc++.so.6 a#b%c/d?é~_-", &mut out);
        assert_eq!(out, "libstdc%2B%2B.so.6%20a%23b%25c%2Fd%3F%C3%A9~_-");
    }
}
