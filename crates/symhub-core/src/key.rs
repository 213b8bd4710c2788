//! Symbol keys: the three-segment `<file>/<id>/<name>` identity every SymSrv, SSQP and Breakpad
//! request is made of.
//!
//! A [`SymbolKey`] is built only through validation, so holding one means: exactly three
//! segments, each decoded from percent-encoding, valid UTF-8, no `.`/`..`, no `/` or `\`, no
//! control characters, and of sane length. Nothing downstream ever has to re-check.
//!
//! Keys are case-insensitive (the SSQP spec says so, and clients disagree on casing), so a key
//! keeps the client's spelling for logs and for upstreams that want it, and offers one
//! [`SymbolKey::normalized`] form that identifies the entry everywhere symhub stores it.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Longest accepted segment, in bytes after decoding. Real names stay far below this; the
/// limit exists so a hostile path cannot make keys (and log lines) arbitrarily large.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Longest accepted raw (still percent-encoded) path, checked before any decoding work.
pub const MAX_RAW_PATH_LEN: usize = 3 * 3 * MAX_SEGMENT_LEN + 2;

/// Names SymStore keeps for its own bookkeeping; clients probe them, symhub never serves them.
/// Matched against the first segment of a path.
const BOOKKEEPING: &[&str] = &["index2.txt", "pingme.txt", "000admin", "index.txt"];

/// Extensions of the file kinds SymStore can keep CAB-compressed (`symstore add /compress`):
/// Windows images, their PDBs and DBGs. Nothing else (Breakpad `.sym`, ELF, Mach-O, sources)
/// ever exists as `foo.xx_`, so asking upstreams for such names would only double traffic.
const CAB_KINDS: &[&str] = &[
    "pdb", "dll", "exe", "sys", "dbg", "ocx", "drv", "cpl", "scr", "efi", "mui", "winmd",
];

/// Characters escaped when a key segment is put back into an upstream URL.
const SEGMENT_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Why a request path is not a symbol key. Every variant answers 404 to SymSrv clients; the
/// variant only decides what the log line says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a SymStore bookkeeping name, never served")]
    Bookkeeping,
    #[error("expected three segments <file>/<id>/<name>, found {0}")]
    SegmentCount(usize),
    #[error("path longer than {MAX_RAW_PATH_LEN} bytes")]
    TooLong,
    #[error("segment {0} is empty")]
    Empty(usize),
    #[error("segment {0} is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong(usize),
    #[error("segment {0} is not valid UTF-8 once decoded")]
    NotUtf8(usize),
    #[error("segment {0} is `.` or `..`")]
    Traversal(usize),
    #[error("segment {0} holds a slash, backslash or control character")]
    BadChar(usize),
}

/// How a key is spelled in the URL sent to one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Spelling {
    /// Exactly as the client sent it (after percent-decoding).
    #[default]
    AsRequested,
    /// Everything lowercase, as the SSQP spec recommends and dotnet-symbol sends.
    Lowercase,
    /// SymSrv style, as WinDbg sends it: file names as given, a hex id in upper case.
    /// Ids that are not plain hex (`elf-buildid-…`, `mach-uuid-…`) stay as sent.
    SymSrv,
}

/// A validated symbol key. See the module notes for what validation guarantees.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SymbolKey {
    segments: [String; 3],
    normalized: String,
}

impl SymbolKey {
    /// Parses a raw request path (still percent-encoded, query string already removed). A
    /// single leading `/` is allowed.
    pub fn parse_path(raw: &str) -> Result<Self, KeyError> {
        if raw.len() > MAX_RAW_PATH_LEN {
            return Err(KeyError::TooLong);
        }
        let raw = raw.strip_prefix('/').unwrap_or(raw);
        let parts: Vec<&str> = raw.split('/').collect();
        // Checked on the decoded name, so `%30%30%30Admin` is bookkeeping too.
        if let Some(first) = parts.first() {
            let first = percent_decode_str(first).decode_utf8_lossy().to_lowercase();
            if BOOKKEEPING.contains(&first.as_str()) {
                return Err(KeyError::Bookkeeping);
            }
        }
        let [a, b, c] = parts[..] else {
            return Err(KeyError::SegmentCount(parts.len()));
        };
        let decode = |i: usize, s: &str| -> Result<String, KeyError> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| KeyError::NotUtf8(i))
        };
        Self::from_segments(decode(1, a)?, decode(2, b)?, decode(3, c)?)
    }

    /// Builds a key from already-decoded segments, with the same validation as
    /// [`SymbolKey::parse_path`].
    pub fn from_segments(
        file: impl Into<String>,
        id: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let segments = [file.into(), id.into(), name.into()];
        for (i, s) in segments.iter().enumerate() {
            check_segment(i + 1, s)?;
        }
        // SymStore keeps `refs.ptr` beside each entry's files: bookkeeping, not a symbol.
        if segments[2].eq_ignore_ascii_case("refs.ptr")
            || BOOKKEEPING.contains(&segments[0].to_lowercase().as_str())
        {
            return Err(KeyError::Bookkeeping);
        }
        let mut normalized = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
        for (i, s) in segments.iter().enumerate() {
            if i > 0 {
                normalized.push('/');
            }
            if s.is_ascii() {
                normalized.extend(s.chars().map(|c| c.to_ascii_lowercase()));
            } else {
                normalized.push_str(&s.to_lowercase());
            }
        }
        Ok(Self {
            segments,
            normalized,
        })
    }

    /// The file segment (`foo.pdb` in `foo.pdb/<id>/foo.pdb`).
    pub fn file(&self) -> &str {
        &self.segments[0]
    }

    /// The id segment.
    pub fn id(&self) -> &str {
        &self.segments[1]
    }

    /// The name segment: the file actually asked for (`foo.pdb`, `foo.pd_`, `foo.sym`, `file.ptr`).
    pub fn name(&self) -> &str {
        &self.segments[2]
    }

    /// The case-folded identity of the entry: equal for every casing a client may send.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The extension of the name segment, lowercased, without the dot.
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.name().rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_lowercase())
    }

    /// True for SymSrv's CAB-compressed names (`foo.pd_`, `foo.dl_`).
    pub fn is_compressed(&self) -> bool {
        self.extension()
            .is_some_and(|e| e.len() >= 2 && e.ends_with('_'))
    }

    /// The CAB-compressed variant of this key (`foo.pdb` → `foo.pd_`), for the kinds SymStore
    /// can compress (Windows images, PDBs, DBGs; see `CAB_KINDS`). `None` for every other kind.
    pub fn compressed_variant(&self) -> Option<SymbolKey> {
        let ext = self.extension()?;
        if !CAB_KINDS.contains(&ext.as_str()) {
            return None;
        }
        let mut name = self.name().to_owned();
        name.pop();
        name.push('_');
        SymbolKey::from_segments(self.file(), self.id(), name).ok()
    }

    /// The key as a URL path (three percent-encoded segments joined by `/`) in the given
    /// spelling.
    pub fn url_path(&self, spelling: Spelling) -> String {
        let spelled: [String; 3] = match spelling {
            Spelling::AsRequested => self.segments.clone(),
            Spelling::Lowercase => self.segments.clone().map(|s| s.to_lowercase()),
            Spelling::SymSrv => {
                let mut s = self.segments.clone();
                if s[1].bytes().all(|b| b.is_ascii_hexdigit()) {
                    s[1] = s[1].to_ascii_uppercase();
                }
                s
            }
        };
        spelled
            .iter()
            .map(|s| utf8_percent_encode(s, SEGMENT_ESCAPE).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn check_segment(i: usize, s: &str) -> Result<(), KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty(i));
    }
    if s.len() > MAX_SEGMENT_LEN {
        return Err(KeyError::SegmentTooLong(i));
    }
    if s == "." || s == ".." {
        return Err(KeyError::Traversal(i));
    }
    if s.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(KeyError::BadChar(i));
    }
    Ok(())
}

impl fmt::Display for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.segments[0], self.segments[1], self.segments[2]
        )
    }
}

impl fmt::Debug for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymbolKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDB: &str = "Foo.PDB/ABCDEF0123456789ABCDEF01234567891/Foo.PDB";

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
            ("a/b", KeyError::SegmentCount(2)),
            ("a/b/c/d", KeyError::SegmentCount(4)),
            ("a//c", KeyError::Empty(2)),
            ("../b/c", KeyError::Traversal(1)),
            ("%2e%2e/b/c", KeyError::Traversal(1)),
            ("a/%2E/c", KeyError::Traversal(2)),
            ("a/b%2fc/d", KeyError::BadChar(2)),
            ("a/b/c%5c..", KeyError::BadChar(3)),
            ("a\\b/c/d", KeyError::BadChar(1)),
            ("a/b%00/c", KeyError::BadChar(2)),
            ("a/b%0a/c", KeyError::BadChar(2)),
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
        let elf = SymbolKey::parse_path("_.debug/elf-buildid-sym-ab12/_.debug").unwrap();
        assert_eq!(
            elf.url_path(Spelling::SymSrv),
            "_.debug/elf-buildid-sym-ab12/_.debug"
        );
        let odd = SymbolKey::parse_path("a%20b.pdb/1/a%23b.pdb").unwrap();
        assert_eq!(odd.url_path(Spelling::AsRequested), "a%20b.pdb/1/a%23b.pdb");
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
    }
}
