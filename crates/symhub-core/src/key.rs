//! Symbol keys: the `<file>/<id>/<name>` identity every SymSrv, SSQP and Breakpad request is
//! made of, and the other SSQP client keys a package may publish.
//!
//! A [`SymbolKey`] is built only through validation, so holding one means: 1 to
//! [`MAX_SEGMENTS`] segments, each decoded from percent-encoding, valid UTF-8, non-empty, not
//! `.`/`..`, with no `/`, `\` or control character, and of sane length; not a SymStore
//! bookkeeping name. Nothing downstream ever has to re-check, and no key ever becomes a path
//! on disk (objects are named by a SHA-256).
//!
//! Three segments are the shape every client asks for and every upstream serves. The SSQP
//! package spec (dotnet/symstore `docs/specs/Package_Based_Symbol_Server.md`) lets a
//! `clientKey` be any key, `12387532` or `12-09` as well as `foo.exe/<id>/foo.exe`: such keys
//! are valid here too ([`SymbolKey::is_triple`] tells them apart), and symhub serves them only
//! from its own store.
//!
//! Keys are case-insensitive (the SSQP spec says so, and clients disagree on casing), so a key
//! keeps the client's spelling for logs and for upstreams that want it, and offers one
//! [`SymbolKey::normalized`] form that identifies the entry everywhere symhub stores it.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::spelling::{encode_segment, symsrv_id, Spelling};

/// Longest accepted segment, in bytes after decoding. Real names stay far below this; the
/// limit exists so a hostile path cannot make keys (and log lines) arbitrarily large.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Most segments in a key. SymSrv, SSQP and Breakpad keys have three; package keys in the
/// wild have fewer. The bound keeps hostile paths cheap to refuse.
pub const MAX_SEGMENTS: usize = 16;

/// Longest accepted key, in bytes after decoding, `/` separators included. Every valid
/// three-segment key fits (3 × [`MAX_SEGMENT_LEN`] + 2).
pub const MAX_KEY_LEN: usize = 1024;

/// Longest accepted raw (still percent-encoded) path, checked before any decoding work: a
/// leading `/` and every decoded byte written as `%XX`.
pub const MAX_RAW_PATH_LEN: usize = 3 * MAX_KEY_LEN + 1;

/// Names SymStore keeps for its own bookkeeping; clients probe them, symhub never serves them.
/// Matched against the first segment of a path.
const BOOKKEEPING: &[&str] = &["index2.txt", "pingme.txt", "000admin", "index.txt"];

/// Extensions of the file kinds SymStore can keep CAB-compressed (`symstore add /compress`):
/// Windows images, their PDBs and DBGs. Nothing else (Breakpad `.sym`, ELF, Mach-O, sources)
/// ever exists as `foo.xx_`, so asking upstreams for such names would only double traffic.
/// Every kind but `pdb` is indexed by a PE header's `%08X%x` (timestamp, image size).
pub(crate) const CAB_KINDS: &[&str] = &[
    "pdb", "dll", "exe", "sys", "dbg", "ocx", "drv", "cpl", "scr", "efi", "mui", "winmd",
];

/// Why a request path is not a symbol key. Every variant answers 404 to SymSrv clients; the
/// variant only decides what the log line says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a SymStore bookkeeping name, never served")]
    Bookkeeping,
    #[error("expected 1 to {MAX_SEGMENTS} segments, found {0}")]
    SegmentCount(usize),
    #[error("path longer than {MAX_RAW_PATH_LEN} bytes")]
    TooLong,
    #[error("key longer than {MAX_KEY_LEN} bytes once decoded")]
    KeyTooLong,
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

/// A validated symbol key. See the module notes for what validation guarantees.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SymbolKey {
    /// The decoded segments joined by `/`, as the client spelled them. Segments never hold a
    /// `/`, so splitting this gives them back.
    display: String,
    normalized: String,
    segments: u8,
}

impl SymbolKey {
    /// Parses a raw request path (still percent-encoded, query string already removed). A
    /// single leading `/` is allowed.
    pub fn parse_path(raw: &str) -> Result<Self, KeyError> {
        if raw.len() > MAX_RAW_PATH_LEN {
            return Err(KeyError::TooLong);
        }
        let raw = raw.strip_prefix('/').unwrap_or(raw);
        if !raw.contains('%') {
            // Nothing to decode (what debuggers send): the path's segments are the key's,
            // checked in the same order as below without a copy of each (a quarter of the
            // handler's instructions for a hit went to this parse; callgrind).
            let first = raw.split('/').next().unwrap_or_default();
            if is_bookkeeping(first) {
                return Err(KeyError::Bookkeeping);
            }
            let count = raw.bytes().filter(|&b| b == b'/').count() + 1;
            if count > MAX_SEGMENTS {
                return Err(KeyError::SegmentCount(count));
            }
            return Self::from_segments_sized(raw.split('/'), raw.len());
        }
        // Checked on the decoded name, so `%30%30%30Admin` is bookkeeping too.
        let first = raw.split('/').next().unwrap_or_default();
        let first = percent_decode_str(first).decode_utf8_lossy().to_lowercase();
        if BOOKKEEPING.contains(&first.as_str()) {
            return Err(KeyError::Bookkeeping);
        }
        let count = raw.split('/').count();
        if count > MAX_SEGMENTS {
            return Err(KeyError::SegmentCount(count));
        }
        let decoded = raw
            .split('/')
            .enumerate()
            .map(|(i, s)| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map_err(|_| KeyError::NotUtf8(i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_decoded(decoded)
    }

    /// Parses an SSQP `clientKey` as a package index writes it: the key itself, segments
    /// joined by `/`, never percent-encoded (clients encode each segment on the wire, the
    /// index holds what they mean). A leading `/` is tolerated. Same validation as
    /// [`SymbolKey::parse_path`].
    pub fn parse_client_key(key: &str) -> Result<Self, KeyError> {
        Self::from_decoded(key.strip_prefix('/').unwrap_or(key).split('/'))
    }

    /// Builds a three-segment key from already-decoded segments, with the same validation as
    /// [`SymbolKey::parse_path`].
    pub fn from_segments(
        file: impl AsRef<str>,
        id: impl AsRef<str>,
        name: impl AsRef<str>,
    ) -> Result<Self, KeyError> {
        Self::from_decoded([file.as_ref(), id.as_ref(), name.as_ref()])
    }

    /// Builds a key of any valid number of already-decoded segments, with the same validation
    /// as [`SymbolKey::parse_path`].
    pub fn from_decoded<I, S>(segments: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_segments_sized(segments, 0)
    }

    /// [`Self::from_decoded`] with room for `len` bytes made at once (no regrowth).
    fn from_segments_sized<I, S>(segments: I, len: usize) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut display = String::with_capacity(len.min(MAX_KEY_LEN));
        let mut count = 0;
        let mut last_start = 0;
        for s in segments {
            let s = s.as_ref();
            count += 1;
            if count > MAX_SEGMENTS {
                return Err(KeyError::SegmentCount(count));
            }
            check_segment(count, s)?;
            if count > 1 {
                display.push('/');
            }
            if display.len() + s.len() > MAX_KEY_LEN {
                return Err(KeyError::KeyTooLong);
            }
            last_start = display.len();
            display.push_str(s);
        }
        if count == 0 {
            return Err(KeyError::SegmentCount(0));
        }
        let first = display.split('/').next().unwrap_or_default();
        // SymStore keeps `refs.ptr` beside each entry's files: bookkeeping, not a symbol.
        if display[last_start..].eq_ignore_ascii_case("refs.ptr") || is_bookkeeping(first) {
            return Err(KeyError::Bookkeeping);
        }
        // Segment by segment is the same as whole: lowercasing never makes or removes a `/`.
        let normalized = if display.is_ascii() {
            display.to_ascii_lowercase()
        } else {
            display.to_lowercase()
        };
        Ok(Self {
            display,
            normalized,
            segments: count as u8,
        })
    }

    /// The decoded segments, in order, as the client spelled them.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.display.split('/')
    }

    /// How many segments the key has (1 to [`MAX_SEGMENTS`]).
    pub fn segment_count(&self) -> usize {
        usize::from(self.segments)
    }

    /// True for the `<file>/<id>/<name>` keys clients ask upstreams for. Other keys (SSQP
    /// package keys such as `12387532`) exist only in the store.
    pub fn is_triple(&self) -> bool {
        self.segments == 3
    }

    /// The file segment (`foo.pdb` in `foo.pdb/<id>/foo.pdb`). For a key of another shape:
    /// its first segment (the whole key for one segment).
    pub fn file(&self) -> &str {
        self.segments().next().unwrap_or_default()
    }

    /// The id segment. For a key of another shape: what lies between its first and last
    /// segments, `/` included (`b/c/d` in `a/b/c/d/e`), empty for one or two segments.
    pub fn id(&self) -> &str {
        match (self.display.find('/'), self.display.rfind('/')) {
            (Some(first), Some(last)) if first < last => &self.display[first + 1..last],
            _ => "",
        }
    }

    /// The name segment: the file actually asked for (`foo.pdb`, `foo.pd_`, `foo.sym`,
    /// `file.ptr`). For a key of another shape: its last segment (the whole key for one).
    pub fn name(&self) -> &str {
        self.display.rsplit('/').next().unwrap_or_default()
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

    /// True for SymSrv's CAB-compressed names (`foo.pd_`, `foo.dl_`), which only exist in
    /// `<file>/<id>/<name>` keys.
    pub fn is_compressed(&self) -> bool {
        self.is_triple()
            && self
                .extension()
                .is_some_and(|e| e.len() >= 2 && e.ends_with('_'))
    }

    /// The CAB-compressed variant of this key (`foo.pdb` → `foo.pd_`), for the kinds SymStore
    /// can compress (Windows images, PDBs, DBGs; see `CAB_KINDS`). `None` for every other kind
    /// and for keys that are not three segments.
    pub fn compressed_variant(&self) -> Option<SymbolKey> {
        if !self.is_triple() {
            return None;
        }
        let ext = self.extension()?;
        if !CAB_KINDS.contains(&ext.as_str()) {
            return None;
        }
        let mut name = self.name().to_owned();
        name.pop();
        name.push('_');
        SymbolKey::from_segments(self.file(), self.id(), name).ok()
    }

    /// The key as a URL path (percent-encoded segments joined by `/`) in the given spelling
    /// (see [`crate::spelling`]). Keys that are not three segments have no kind: `symsrv`
    /// sends them as requested.
    pub fn url_path(&self, spelling: Spelling) -> String {
        let mut out = String::with_capacity(self.display.len() + 8);
        let symsrv_id = (spelling == Spelling::SymSrv && self.is_triple())
            .then(|| symsrv_id(self.file(), self.id(), self.name()));
        for (i, s) in self.segments().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match (spelling, &symsrv_id) {
                (Spelling::Lowercase, _) => encode_segment(&s.to_lowercase(), &mut out),
                (Spelling::SymSrv, Some(id)) if i == 1 => encode_segment(id, &mut out),
                _ => encode_segment(s, &mut out),
            }
        }
        out
    }
}

/// Whether a (decoded) first segment names a SymStore bookkeeping file, in any case. ASCII
/// case folding is enough: no other character lowercases into these names.
fn is_bookkeeping(first: &str) -> bool {
    BOOKKEEPING.iter().any(|b| first.eq_ignore_ascii_case(b))
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

impl SymbolKey {
    /// The key as the client spelled it (decoded), segments joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.display
    }
}

impl fmt::Display for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymbolKey({self})")
    }
}

#[cfg(test)]
mod tests {

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

    use super::*;

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
}
