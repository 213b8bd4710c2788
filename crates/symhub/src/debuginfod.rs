//! debuginfod (elfutils' protocol, `DEBUGINFOD_URLS`) on top of the resolver: which key
//! answers each request, how a key is asked of a debuginfod upstream, and how a section is
//! found in a file without reading the file.
//!
//! One file, two spellings: `buildid/<id>/debuginfo` is the SSQP key
//! `_.debug/elf-buildid-sym-<id>/_.debug` (the id zero-padded to 20 bytes, the SSQP
//! convention), so uploads, packages, the cache, SSQP upstreams (Microsoft publishes .NET's
//! Linux debug files so) and debuginfod upstreams all answer it, and a file that came in
//! through one spelling is served through the other. `buildid/<id>/executable` has no SSQP
//! key (SSQP names binaries by file name, which a debuginfod request lacks): it is
//! `_.executable/elf-buildid-<id>/_.executable`, answered by the store's build-id index,
//! the cache and debuginfod upstreams, and never asked of a SymSrv upstream.
//! `buildid/<id>/source/<path>` is asked of debuginfod upstreams only and cached under a key
//! that names the path by hash ([`source`]); uploads hold no sources yet.
//! `buildid/<id>/section/<name>` is read from the debuginfo file, else from the executable
//! (whichever has the section with contents, as elfutils does), as a byte range of the
//! cached or stored file: nothing is extracted or copied.

use std::fs::File;

use symhub_core::debuginfod::ssqp::{debuginfo_key, SsqpElfKey};
use symhub_core::debuginfod::{BuildId, SourcePath};
use symhub_core::SymbolKey;

/// The file name of the debuginfod-only executable keys.
pub const EXECUTABLE_NAME: &str = "_.executable";

/// The file name of the debuginfod-only source keys.
pub const SOURCE_NAME: &str = "_.source";

/// The key of `buildid/<id>/debuginfo`.
pub fn debuginfo(id: &BuildId) -> Option<SymbolKey> {
    debuginfo_key(id).ok()
}

/// The key of `buildid/<id>/executable`.
pub fn executable(id: &BuildId) -> Option<SymbolKey> {
    SymbolKey::from_segments(
        EXECUTABLE_NAME,
        format!("elf-buildid-{}", id.as_str()),
        EXECUTABLE_NAME,
    )
    .ok()
}

/// The key of `buildid/<id>/source/<path>`: `_.source/elf-buildid-src-<id>/<sha256 of the
/// canonical path>`. A path is case-sensitive and may be long, a key is neither, so the key
/// names it by hash and the path itself travels with the request to debuginfod upstreams
/// (`Cache::resolve_with`'s target).
pub fn source(id: &BuildId, path: &SourcePath) -> Option<SymbolKey> {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(path.as_str().as_bytes()));
    SymbolKey::from_segments(
        SOURCE_NAME,
        format!("elf-buildid-src-{}", id.as_str()),
        hash,
    )
    .ok()
}

/// The debuginfod `executable` keys an SSQP binary key (`<name>/elf-buildid-<id>/<name>`)
/// answers: one per build id its padded id may stand for. None for other keys.
pub fn executable_keys_of(key: &SymbolKey) -> Vec<SymbolKey> {
    match SsqpElfKey::parse(key) {
        Some(elf @ SsqpElfKey::Executable { .. }) => elf
            .build_id_candidates()
            .iter()
            .filter_map(executable)
            .collect(),
        _ => Vec::new(),
    }
}

/// The build id of a debuginfod-only executable key.
pub fn executable_build_id(key: &SymbolKey) -> Option<&str> {
    if !(key.is_triple() && key.file().eq_ignore_ascii_case(EXECUTABLE_NAME)) {
        return None;
    }
    key.id().strip_prefix("elf-buildid-")
}

/// Keys only debuginfod requests make: a SymSrv upstream cannot have them.
pub fn is_debuginfod_only(key: &SymbolKey) -> bool {
    key.is_triple()
        && (key.file().eq_ignore_ascii_case(EXECUTABLE_NAME)
            || key.file().eq_ignore_ascii_case(SOURCE_NAME))
}

/// Where a debuginfod upstream has `key`: `buildid/<id>/debuginfo` or `…/executable` for
/// the SSQP ELF keys, nothing for any other key. A padded SSQP id stands for the shortest
/// id it can be (a 16-byte md5 id is written padded to 20 bytes; a 20-byte sha1 id ending
/// in zero bytes is the rare loser, and is then asked by its shortened form).
pub fn upstream_path(key: &SymbolKey) -> Option<String> {
    if let Some(id) = executable_build_id(key) {
        return Some(format!(
            "buildid/{}/executable",
            BuildId::parse_hex(id).ok()?
        ));
    }
    let elf = SsqpElfKey::parse(key)?;
    let id = elf.build_id_candidates().into_iter().next()?;
    Some(match elf {
        SsqpElfKey::Debuginfo { .. } => format!("buildid/{id}/debuginfo"),
        SsqpElfKey::Executable { .. } => format!("buildid/{id}/executable"),
    })
}

/// The byte range `(offset, length)` of ELF section `name` in `file`, if the file has it
/// with contents (not `SHT_NOBITS`, not empty). Reads only the ELF header, the section
/// headers and the section name table (object's `ReadCache`), whatever the file's size.
/// Compressed sections are served as stored, as elfutils does.
pub fn section_range(file: &File, name: &str) -> Option<(u64, u64)> {
    use object::read::{Object, ObjectSection, ReadCache};
    if name.is_empty() {
        return None;
    }
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let section = elf.section_by_name(name)?;
    let (offset, size) = section.file_range()?;
    (size > 0).then_some((offset, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_upstream_paths() {
        let id = BuildId::parse_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
        let d = debuginfo(&id).unwrap();
        assert_eq!(
            d.to_string(),
            format!("_.debug/elf-buildid-sym-{id}/_.debug")
        );
        assert_eq!(
            upstream_path(&d).unwrap(),
            format!("buildid/{id}/debuginfo")
        );
        let e = executable(&id).unwrap();
        assert!(is_debuginfod_only(&e));
        assert_eq!(executable_build_id(&e), Some(id.as_str()));
        let path = SourcePath::parse("/src/Main.c").unwrap();
        let src = source(&id, &path).unwrap();
        assert!(is_debuginfod_only(&src));
        assert_eq!(
            executable_build_id(&src),
            None,
            "a source is not an executable"
        );
        assert_eq!(
            upstream_path(&src),
            None,
            "a source key cannot spell its path"
        );
        assert_eq!(
            upstream_path(&e).unwrap(),
            format!("buildid/{id}/executable")
        );
        let named =
            SymbolKey::parse_path(&format!("libc.so.6/elf-buildid-{id}/libc.so.6")).unwrap();
        assert!(!is_debuginfod_only(&named));
        assert_eq!(
            upstream_path(&named).unwrap(),
            format!("buildid/{id}/executable")
        );
        let pdb = SymbolKey::parse_path("a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.pdb").unwrap();
        assert_eq!(upstream_path(&pdb), None);
        // A 16-byte id is padded in the SSQP key and asked by itself.
        let md5 = BuildId::parse_hex("0123456789abcdef0123456789abcdef").unwrap();
        let d = debuginfo(&md5).unwrap();
        assert_eq!(
            upstream_path(&d).unwrap(),
            format!("buildid/{md5}/debuginfo")
        );
    }

    #[test]
    fn sections_are_found_as_byte_ranges() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/elf");
        let debug = File::open(dir.join("hello.debug")).unwrap();
        let (offset, len) = section_range(&debug, ".debug_info").unwrap();
        let bytes = std::fs::read(dir.join("hello.debug")).unwrap();
        let parsed = symhub_core::elf::ElfFile::parse(&bytes).unwrap();
        assert_eq!(
            &bytes[offset as usize..(offset + len) as usize],
            parsed.section(".debug_info").unwrap()
        );
        assert!(parsed.has_debug_info());
        let stripped = std::fs::read(dir.join("hello")).unwrap();
        assert!(!symhub_core::elf::ElfFile::parse(&stripped)
            .unwrap()
            .has_debug_info());
        let text = std::fs::read(dir.join("README.md")).unwrap();
        assert!(symhub_core::elf::ElfFile::parse(&text).is_err());
        // `.text` is NOBITS in a split debug file: not served from it.
        assert_eq!(section_range(&debug, ".text"), None);
        assert_eq!(section_range(&debug, ".nope"), None);
        let exe = File::open(dir.join("hello")).unwrap();
        assert!(section_range(&exe, ".text").is_some());
    }
}
