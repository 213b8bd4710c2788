//! The debuginfod protocol (elfutils), as far as it concerns what a request names: the
//! parsed, validated form of `buildid/<BUILDID>/{debuginfo, executable, source/<path>,
//! section/<name>}`, before any I/O, and the way back to a URL path for an upstream.
//!
//! A [`DebuginfodRequest`] is built only through validation, so holding one means: a build id
//! of 1 to 64 bytes in lowercase hex, and for sources an absolute, canonical path with no
//! `.`/`..`/empty components and no control characters (see [`SourcePath`]), and for sections
//! a name of sane characters and length (see [`SectionName`]). Nothing downstream re-checks.
//!
//! The mapping to SSQP keys (`_.debug/elf-buildid-sym-<id>/_.debug`, …) lives in [`ssqp`].
//!
//! Rules come from elfutils 0.188 (Debian bookworm), `debuginfod/debuginfod.cxx`
//! (`handler_cb`, `handle_buildid`, `canon_pathname`) and `debuginfod/debuginfod-client.c`
//! (`debuginfod_query_server`), checked against the real server on loopback.

mod source_path;
pub mod ssqp;

use std::fmt;

use percent_encoding::percent_decode_str;

pub use source_path::{SourcePath, SourcePathError, MAX_SOURCE_COMPONENT_LEN, MAX_SOURCE_PATH_LEN};

/// Fewest bytes in a build id. elfutils' server only refuses an empty id (`handle_buildid`:
/// at least 2 hex digits, even count, lowercase hex).
pub const MIN_BUILD_ID_BYTES: usize = 1;

/// Most bytes in a build id: elfutils' client refuses ids of more than
/// `MAX_BUILD_ID_BYTES * 2` = 128 hex digits (`debuginfod-client.c`), so no real client sends
/// longer ones. Real ids are 20 bytes (sha1, GNU ld's default), 16 (md5, uuid) or 8
/// (lld's `--build-id=fast`).
pub const MAX_BUILD_ID_BYTES: usize = 64;

/// Longest accepted section name, in bytes. ELF puts no limit on names, but names a debugger
/// asks for (`.debug_info`, `.gdb_index`, `.gnu_debugdata`) are short; the limit keeps hostile
/// names out of logs and keys. `-ffunction-sections` names of long C++/Rust symbols can exceed
/// it: nobody asks a debuginfod server for those.
pub const MAX_SECTION_NAME_LEN: usize = 256;

/// Longest accepted raw (still percent-encoded) request path, checked before any decoding:
/// a fully escaped source path of [`MAX_SOURCE_PATH_LEN`] bytes plus the rest.
pub const MAX_RAW_PATH_LEN: usize = 3 * MAX_SOURCE_PATH_LEN + 3 * 2 * MAX_BUILD_ID_BYTES + 64;

/// Why a build id is not one. elfutils' server answers all of these with 503
/// (`reportable_exception` defaults to 503 in `debuginfod.cxx`); a symbol server should
/// answer 404 or 400, never a 5xx that reads as an outage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildIdError {
    #[error("the build id is empty")]
    Empty,
    #[error("the build id has an odd number of hex digits")]
    OddLength,
    #[error("the build id holds a character that is not a hex digit")]
    NotHex,
    #[error("the build id is longer than {MAX_BUILD_ID_BYTES} bytes")]
    TooLong,
}

/// A GNU build id (`NT_GNU_BUILD_ID`), held as lowercase hex, the spelling every debuginfod
/// client sends and elfutils' server requires. Accepts either case on input.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId(String);

impl BuildId {
    /// Parses hex digits (either case; normalized to lowercase). Shape: an even number of hex
    /// digits, 2 to `2 * MAX_BUILD_ID_BYTES`.
    pub fn parse_hex(s: &str) -> Result<Self, BuildIdError> {
        if s.is_empty() {
            return Err(BuildIdError::Empty);
        }
        if s.len() > 2 * MAX_BUILD_ID_BYTES {
            return Err(BuildIdError::TooLong);
        }
        // Without an early exit, so the check is vectorized.
        if !s.bytes().fold(true, |hex, b| hex & b.is_ascii_hexdigit()) {
            return Err(BuildIdError::NotHex);
        }
        if s.len() % 2 != 0 {
            return Err(BuildIdError::OddLength);
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// From the raw bytes of the note's descriptor (as [`crate::elf::ElfFile::build_id`]
    /// returns them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BuildIdError> {
        if bytes.is_empty() {
            return Err(BuildIdError::Empty);
        }
        if bytes.len() > MAX_BUILD_ID_BYTES {
            return Err(BuildIdError::TooLong);
        }
        Ok(Self(hex(bytes)))
    }

    /// Lowercase hex, as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length in bytes (half the hex digits).
    pub fn len_bytes(&self) -> usize {
        self.0.len() / 2
    }

    /// The raw bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0
            .as_bytes()
            .chunks(2)
            .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
            .collect()
    }
}

fn nibble(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        _ => h - b'a' + 10, // only lowercase hex is ever stored
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({})", self.0)
    }
}

impl std::str::FromStr for BuildId {
    type Err = BuildIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_hex(s)
    }
}

/// Why a section name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionNameError {
    #[error("the section name is empty")]
    Empty,
    #[error("the section name is longer than {MAX_SECTION_NAME_LEN} bytes")]
    TooLong,
    #[error("the section name holds a character outside [A-Za-z0-9._$@+-]")]
    BadChar,
    #[error("the section name is `.` or `..`")]
    Dots,
}

/// An ELF section name as a client may ask for it: 1 to [`MAX_SECTION_NAME_LEN`] bytes of
/// `[A-Za-z0-9._$@+-]`, not `.` or `..`. That covers every name toolchains write
/// (`.debug_info`, `.gnu_debugdata`, `.note.gnu.build-id`, `.rela.dyn`, `.text.unlikely`,
/// `__libc_freeres_fn`, Rust's `$`-mangled names) and rules out `/`, `\`, `%`, spaces and
/// control characters, so a name is safe in a key or a file name. elfutils' server accepts
/// any name and compares it byte for byte (`extract_section`); names outside this set simply
/// get no answer here.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SectionName(String);

impl SectionName {
    /// Validates an already decoded name.
    pub fn parse(name: &str) -> Result<Self, SectionNameError> {
        if name.is_empty() {
            return Err(SectionNameError::Empty);
        }
        if name.len() > MAX_SECTION_NAME_LEN {
            return Err(SectionNameError::TooLong);
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"._$@+-".contains(&b);
        if !name.bytes().all(ok) {
            return Err(SectionNameError::BadChar);
        }
        if name == "." || name == ".." {
            return Err(SectionNameError::Dots);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SectionName({})", self.0)
    }
}

/// What a request asks for about a build id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Artifact {
    /// The file with the DWARF: a split `.debug` file or an unstripped binary.
    Debuginfo,
    /// The runnable binary.
    Executable,
    /// A source file, named by the canonical form of its absolute path in the DWARF.
    Source(SourcePath),
    /// One section's bytes as stored in the debuginfo or the executable (see
    /// [`crate::elf::ElfFile::section`]).
    Section(SectionName),
}

impl Artifact {
    /// The artifact type segment: `debuginfo`, `executable`, `source` or `section` (also the
    /// `type` label elfutils puts on its `http_requests_total` metric).
    pub fn kind(&self) -> &'static str {
        match self {
            Artifact::Debuginfo => "debuginfo",
            Artifact::Executable => "executable",
            Artifact::Source(_) => "source",
            Artifact::Section(_) => "section",
        }
    }
}

/// Why a request path is not a debuginfod request. All of them mean "no such file" to a
/// client; the variant decides what the log line says. No variant echoes what the client
/// sent (elfutils scrubs it from metrics too, PR28242).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebuginfodError {
    #[error("path longer than {MAX_RAW_PATH_LEN} bytes")]
    TooLong,
    #[error("not a `buildid/<id>/<artifact>` path")]
    NotBuildid,
    #[error("no artifact type after the build id")]
    MissingArtifact,
    #[error("unknown artifact type (debuginfo, executable, source or section)")]
    UnknownArtifact,
    #[error("`debuginfo` and `executable` take nothing after them")]
    TrailingPath,
    #[error("a segment is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("bad build id: {0}")]
    BuildId(#[from] BuildIdError),
    #[error("bad source path: {0}")]
    Source(#[from] SourcePathError),
    #[error("bad section name: {0}")]
    Section(#[from] SectionNameError),
}

/// A validated debuginfod request. See the module notes for what validation guarantees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DebuginfodRequest {
    pub build_id: BuildId,
    pub artifact: Artifact,
}

impl DebuginfodRequest {
    /// Parses a request path after any prefix symhub mounts the protocol under, query string
    /// already removed: `buildid/<id>/debuginfo`, `buildid/<id>/executable`,
    /// `buildid/<id>/source/<absolute path>`, `buildid/<id>/section/<name>`. One leading `/`
    /// is allowed.
    ///
    /// Every segment is percent-decoded once, as libmicrohttpd does for elfutils' server. The
    /// source path is everything after `source`, slash included (elfutils' `suffix`), decoded
    /// as a whole and then canonicalized, so `%2F`, `%2e%2e` and literal `/../` all end up
    /// the same and can never climb above `/` (see [`SourcePath`]). elfutils' client sends
    /// the DWARF path escaped by `curl_easy_escape` with `/` put back, unresolved
    /// (`CURLOPT_PATH_AS_IS`); the server canonicalizes it (`canon_pathname`, PR25548).
    pub fn parse_path(raw: &str) -> Result<Self, DebuginfodError> {
        if raw.len() > MAX_RAW_PATH_LEN {
            return Err(DebuginfodError::TooLong);
        }
        let mut rest = Some(raw.strip_prefix('/').unwrap_or(raw));
        if next_segment(&mut rest) != Some("buildid") {
            return Err(DebuginfodError::NotBuildid);
        }
        let id = decode(next_segment(&mut rest).ok_or(DebuginfodError::NotBuildid)?)?;
        let kind = decode(next_segment(&mut rest).ok_or(DebuginfodError::MissingArtifact)?)?;
        // The build id is checked first, as elfutils does once the type is known.
        let artifact = match &*kind {
            "debuginfo" | "executable" if rest.is_some() => {
                return Err(DebuginfodError::TrailingPath)
            }
            "debuginfo" => Artifact::Debuginfo,
            "executable" => Artifact::Executable,
            "source" => {
                // `source` alone, or `source/`: elfutils' "invalid source suffix".
                let path = decode(rest.unwrap_or(""))?;
                let build_id = BuildId::parse_hex(&id)?;
                let path = SourcePath::parse(&format!("/{path}"))?;
                return Ok(Self {
                    build_id,
                    artifact: Artifact::Source(path),
                });
            }
            "section" => {
                let name = decode(rest.unwrap_or(""))?;
                let build_id = BuildId::parse_hex(&id)?;
                return Ok(Self {
                    build_id,
                    artifact: Artifact::Section(SectionName::parse(&name)?),
                });
            }
            "" => return Err(DebuginfodError::MissingArtifact),
            _ => return Err(DebuginfodError::UnknownArtifact),
        };
        Ok(Self {
            build_id: BuildId::parse_hex(&id)?,
            artifact,
        })
    }

    /// The request as a URL path (no leading `/`) in the spelling elfutils' client sends, for
    /// forwarding to an upstream debuginfod server: lowercase id, source path components
    /// escaped like `curl_easy_escape` (everything but `A-Za-z0-9-._~`) with `/` kept.
    /// [`DebuginfodRequest::parse_path`] of the result gives back an equal request.
    pub fn url_path(&self) -> String {
        let id = self.build_id.as_str();
        match &self.artifact {
            Artifact::Debuginfo | Artifact::Executable => {
                format!("buildid/{id}/{}", self.artifact.kind())
            }
            Artifact::Source(p) => format!("buildid/{id}/source{}", escape_path(p.as_str())),
            // Section names are of a charset that needs no escaping.
            Artifact::Section(s) => format!("buildid/{id}/section/{s}"),
        }
    }
}

impl fmt::Display for DebuginfodRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url_path())
    }
}

/// The segment `rest` starts with, up to its first `/`; `rest` keeps what follows that `/`
/// (`None` when there was none). `str::splitn`'s `char` searcher was half of a debuginfod
/// hit's path parse (callgrind).
fn next_segment<'a>(rest: &mut Option<&'a str>) -> Option<&'a str> {
    let s = rest.take()?;
    match s.bytes().position(|b| b == b'/') {
        Some(i) => {
            *rest = Some(&s[i + 1..]);
            Some(&s[..i])
        }
        None => Some(s),
    }
}

/// Percent-decoded; borrowed when there is nothing to decode (what clients send).
fn decode(s: &str) -> Result<std::borrow::Cow<'_, str>, DebuginfodError> {
    // Without an escape the segment is itself: the decoder walked it byte by byte anyway,
    // then checked it as UTF-8 (a third of a debuginfod hit's path parse, callgrind).
    if !s.as_bytes().contains(&b'%') {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| DebuginfodError::NotUtf8)
}

/// `curl_easy_escape` of each component: RFC 3986 unreserved characters stay, every other
/// byte becomes `%XX`; the `/` between components stays.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "fb89faed92941c861f194450d2f07cf0b1d2caec";

    fn parse(p: &str) -> Result<DebuginfodRequest, DebuginfodError> {
        DebuginfodRequest::parse_path(p)
    }

    #[test]
    fn the_four_artifacts() {
        let r = parse(&format!("/buildid/{ID}/debuginfo")).unwrap();
        assert_eq!(r.build_id.as_str(), ID);
        assert_eq!(r.artifact, Artifact::Debuginfo);
        let r = parse(&format!("buildid/{ID}/executable")).unwrap();
        assert_eq!(r.artifact, Artifact::Executable);
        let r = parse(&format!("/buildid/{ID}/source/usr/src/a.c")).unwrap();
        assert_eq!(
            r.artifact,
            Artifact::Source(SourcePath::parse("/usr/src/a.c").unwrap())
        );
        let r = parse(&format!("/buildid/{ID}/section/.debug_info")).unwrap();
        assert_eq!(r.artifact.kind(), "section");
        assert!(matches!(r.artifact, Artifact::Section(s) if s.as_str() == ".debug_info"));
    }

    #[test]
    fn build_ids_are_hex_of_even_length_and_bounded() {
        let upper = parse(&format!("/buildid/{}/debuginfo", ID.to_uppercase())).unwrap();
        assert_eq!(upper.build_id.as_str(), ID, "normalized to lowercase");
        assert_eq!(BuildId::parse_hex("ab").unwrap().len_bytes(), 1);
        let longest = "a".repeat(2 * MAX_BUILD_ID_BYTES);
        assert_eq!(BuildId::parse_hex(&longest).unwrap().len_bytes(), 64);
        let bad = [
            ("", BuildIdError::Empty),
            ("abc", BuildIdError::OddLength),
            ("a", BuildIdError::OddLength),
            ("zz", BuildIdError::NotHex),
            ("ab-cd", BuildIdError::NotHex),
            ("ab cd", BuildIdError::NotHex),
            ("0xab", BuildIdError::NotHex),
        ];
        for (s, want) in bad {
            assert_eq!(BuildId::parse_hex(s), Err(want.clone()), "{s:?}");
            assert_eq!(
                parse(&format!("buildid/{s}/debuginfo")),
                Err(DebuginfodError::BuildId(want)),
                "{s:?}"
            );
        }
        let too_long = "ab".repeat(MAX_BUILD_ID_BYTES + 1);
        assert_eq!(BuildId::parse_hex(&too_long), Err(BuildIdError::TooLong));
        assert_eq!(
            BuildId::from_bytes(&[0; MAX_BUILD_ID_BYTES + 1]),
            Err(BuildIdError::TooLong)
        );
        assert_eq!(BuildId::from_bytes(&[]), Err(BuildIdError::Empty));
        // Percent-encoded hex is still hex (libmicrohttpd decodes before elfutils looks).
        assert_eq!(
            parse("buildid/%41b/debuginfo").unwrap().build_id.as_str(),
            "ab"
        );
        assert_eq!(
            parse("buildid/a%2Fb/debuginfo"),
            Err(DebuginfodError::BuildId(BuildIdError::NotHex))
        );
    }

    #[test]
    fn build_id_bytes_round_trip() {
        let bytes = [0x00, 0x0f, 0xa0, 0xff, 0x12];
        let id = BuildId::from_bytes(&bytes).unwrap();
        assert_eq!(id.as_str(), "000fa0ff12");
        assert_eq!(id.to_bytes(), bytes);
        assert_eq!("000FA0FF12".parse::<BuildId>().unwrap(), id);
        assert_eq!(id.to_string(), "000fa0ff12");
    }

    #[test]
    fn malformed_paths_are_refused() {
        let bad = [
            ("", DebuginfodError::NotBuildid),
            ("/", DebuginfodError::NotBuildid),
            ("buildid", DebuginfodError::NotBuildid),
            ("BUILDID/ab/debuginfo", DebuginfodError::NotBuildid),
            ("//buildid/ab/debuginfo", DebuginfodError::NotBuildid),
            ("metrics", DebuginfodError::NotBuildid),
            ("buildid/ab", DebuginfodError::MissingArtifact),
            ("buildid/ab/", DebuginfodError::MissingArtifact),
            ("buildid/ab/debug", DebuginfodError::UnknownArtifact),
            ("buildid/ab/Debuginfo", DebuginfodError::UnknownArtifact),
            ("buildid/ab/debuginfo/", DebuginfodError::TrailingPath),
            ("buildid/ab/executable/x", DebuginfodError::TrailingPath),
            ("buildid/ab/source/%ff", DebuginfodError::NotUtf8),
            ("buildid/%ff/debuginfo", DebuginfodError::NotUtf8),
        ];
        for (p, want) in bad {
            assert_eq!(parse(p), Err(want), "{p:?}");
        }
        let huge = format!("buildid/ab/source/{}", "a/".repeat(MAX_RAW_PATH_LEN));
        assert_eq!(parse(&huge), Err(DebuginfodError::TooLong));
    }

    #[test]
    fn source_paths_are_decoded_then_canonicalized() {
        let want = SourcePath::parse("/tmp/symhub/hello.c").unwrap();
        for p in [
            "source/tmp/symhub/hello.c",
            "source//tmp//symhub/./hello.c",
            "source/tmp/x/../symhub/hello.c",
            "source/tmp/symhub%2Fhello.c",
            "source/tmp/x/%2e%2E/symhub/hello.c",
            "source%2Ftmp/symhub/hello.c",
            "source/tmp%2f.%2fsymhub/hello.c",
        ] {
            let r = parse(&format!("buildid/{ID}/{p}"));
            // `source%2Ftmp` is one segment `source/tmp` once decoded: not an artifact type.
            if p.starts_with("source%2F") {
                assert_eq!(r, Err(DebuginfodError::UnknownArtifact));
                continue;
            }
            assert_eq!(r.unwrap().artifact, Artifact::Source(want.clone()), "{p}");
        }
        let bad = [
            ("source", SourcePathError::NotAFile),
            ("source/", SourcePathError::NotAFile),
            ("source/..", SourcePathError::AboveRoot),
            ("source/a/..", SourcePathError::NotAFile),
            ("source/../etc/passwd", SourcePathError::AboveRoot),
            ("source/%2e%2e/etc/passwd", SourcePathError::AboveRoot),
            ("source/a/../../etc/passwd", SourcePathError::AboveRoot),
            (
                "source/a/%2e%2e%2f%2e%2e%2fetc/passwd",
                SourcePathError::AboveRoot,
            ),
            ("source/a/b%00.c", SourcePathError::ControlChar),
            ("source/a/b%0a.c", SourcePathError::ControlChar),
            ("source/a/b%c2%85.c", SourcePathError::ControlChar),
            ("source/a%5c..%5cb.c", SourcePathError::Backslash),
            ("source/usr/src/", SourcePathError::NotAFile),
        ];
        for (p, want) in bad {
            assert_eq!(
                parse(&format!("buildid/{ID}/{p}")),
                Err(DebuginfodError::Source(want)),
                "{p}"
            );
        }
        // Decoded once only: `%252e` is the three characters `%2e`, a plain name.
        let r = parse(&format!("buildid/{ID}/source/a/%252e%252e/b.c")).unwrap();
        assert_eq!(
            r.artifact,
            Artifact::Source(SourcePath::parse("/a/%2e%2e/b.c").unwrap())
        );
    }

    #[test]
    fn section_names() {
        for ok in [
            ".debug_info",
            ".gnu_debugdata",
            ".note.gnu.build-id",
            ".zdebug_info",
            ".text.unlikely",
            "__libc_freeres_fn",
            ".text._ZN4core3fmt$LT$impl$GT$3fmt17h0123456789abcdefE",
            ".gdb_index",
        ] {
            let r = parse(&format!("buildid/{ID}/section/{ok}")).unwrap();
            assert!(
                matches!(r.artifact, Artifact::Section(ref s) if s.as_str() == ok),
                "{ok}"
            );
        }
        let bad = [
            ("section", SectionNameError::Empty),
            ("section/", SectionNameError::Empty),
            ("section//", SectionNameError::BadChar),
            ("section/a/b", SectionNameError::BadChar),
            ("section/.debug%2Finfo", SectionNameError::BadChar),
            ("section/..", SectionNameError::Dots),
            ("section/%2e", SectionNameError::Dots),
            ("section/a b", SectionNameError::BadChar),
            ("section/.debug%00", SectionNameError::BadChar),
            ("section/%5c", SectionNameError::BadChar),
            ("section/%C3%A9", SectionNameError::BadChar),
        ];
        for (p, want) in bad {
            assert_eq!(
                parse(&format!("buildid/{ID}/{p}")),
                Err(DebuginfodError::Section(want)),
                "{p}"
            );
        }
        let long = "s".repeat(MAX_SECTION_NAME_LEN + 1);
        assert_eq!(SectionName::parse(&long), Err(SectionNameError::TooLong));
    }

    #[test]
    fn url_paths_parse_back_and_escape_like_curl() {
        for p in [
            format!("buildid/{ID}/debuginfo"),
            format!("buildid/{ID}/executable"),
            format!("buildid/{ID}/section/.debug_line"),
            format!("buildid/{ID}/source/usr/src/a.c"),
        ] {
            assert_eq!(parse(&p).unwrap().url_path(), p);
        }
        let r = parse(&format!("buildid/{ID}/source/home/j%20d/n%C3%A9/a+b%25.c")).unwrap();
        let url = r.url_path();
        assert_eq!(
            url,
            format!("buildid/{ID}/source/home/j%20d/n%C3%A9/a%2Bb%25.c")
        );
        assert_eq!(parse(&url).unwrap(), r);
        assert_eq!(r.to_string(), url);
    }
}
