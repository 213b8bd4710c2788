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
    /// The decoded segments joined by `/` as the client spelled them (`text[..split]`), then
    /// the same case-folded (`text[split..]`): one allocation for both, since every key is
    /// made, cloned and dropped on the hot path. Segments never hold a `/`, so splitting
    /// either half gives its segments back.
    text: String,
    split: u16,
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
        if let Some(segments) = plain_key_segments(raw) {
            // What debuggers send: nothing to decode or refuse, so the key is the path as it
            // stands: one pass and one copy (a remembered 404's key parse: 2,250 → 1,180
            // instructions, callgrind).
            let mut text = String::with_capacity(2 * raw.len());
            text.push_str(raw);
            text.push_str(raw);
            text[raw.len()..].make_ascii_lowercase();
            return Ok(Self::joined(text, raw.len(), segments));
        }
        Self::parse_path_in_full(raw)
    }

    /// [`SymbolKey::parse_path`] without its shortcut for plain paths, for the fuzz target
    /// that checks both agree. `raw` has no leading `/` and is at most
    /// [`MAX_RAW_PATH_LEN`] bytes.
    #[doc(hidden)]
    pub fn parse_path_in_full(raw: &str) -> Result<Self, KeyError> {
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
        let segments = [file.as_ref(), id.as_ref(), name.as_ref()];
        let len = segments.iter().map(|s| s.len() + 1).sum();
        Self::from_segments_sized(segments, len)
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
        // Room for both spellings (see `text`), so the key is made in one allocation.
        let mut display = String::with_capacity(2 * len.min(MAX_KEY_LEN));
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
        let split = display.len();
        let text = if display.is_ascii() {
            let mut bytes = display.into_bytes();
            bytes.extend_from_within(..split);
            bytes[split..].make_ascii_lowercase();
            String::from_utf8(bytes).expect("ASCII is UTF-8")
        } else {
            let folded = fold_case(&display);
            display.push_str(&folded);
            display
        };
        Ok(Self::joined(text, split, count as u8))
    }

    fn joined(text: String, split: usize, segments: u8) -> Self {
        debug_assert!(split <= MAX_KEY_LEN && split <= text.len());
        Self {
            text,
            split: split as u16,
            segments,
        }
    }

    /// The key as the client spelled it.
    fn display(&self) -> &str {
        &self.text[..usize::from(self.split)]
    }

    /// The decoded segments, in order, as the client spelled them.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.display().split('/')
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
        let display = self.display();
        match (display.find('/'), display.rfind('/')) {
            (Some(first), Some(last)) if first < last => &display[first + 1..last],
            _ => "",
        }
    }

    /// The name segment: the file actually asked for (`foo.pdb`, `foo.pd_`, `foo.sym`,
    /// `file.ptr`). For a key of another shape: its last segment (the whole key for one).
    pub fn name(&self) -> &str {
        // `rfind` on a byte: `rsplit` walked the key back through a char searcher.
        let display = self.display();
        match display.rfind('/') {
            Some(i) => &display[i + 1..],
            None => display,
        }
    }

    /// The case-folded identity of the entry: equal for every casing a client may send.
    pub fn normalized(&self) -> &str {
        &self.text[usize::from(self.split)..]
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
        let mut out = String::with_capacity(usize::from(self.split) + 8);
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

/// The segment count of `raw` if it is certainly a valid key as it stands: ASCII without `%`,
/// `\` or control characters, every segment sane, not SymStore bookkeeping. `None` is "not
/// certain", never "invalid": the full parse then decides, and names the fault.
fn plain_key_segments(raw: &str) -> Option<u8> {
    if raw.len() > MAX_KEY_LEN {
        return None;
    }
    // Every byte checked in one pass the compiler vectorizes, then split on `/` without
    // a `str` searcher's setup per segment (together a third of this parse's instructions,
    // callgrind).
    let plain = raw.bytes().fold(true, |plain, b| {
        plain & (b' '..=b'~').contains(&b) & (b != b'%') & (b != b'\\')
    });
    if !plain {
        return None;
    }
    let mut count = 0;
    let mut last: &[u8] = &[];
    for segment in raw.as_bytes().split(|&b| b == b'/') {
        count += 1;
        if count > MAX_SEGMENTS
            || segment.is_empty()
            || segment.len() > MAX_SEGMENT_LEN
            || segment == b"."
            || segment == b".."
            || (count == 1 && is_bookkeeping(segment))
        {
            return None;
        }
        last = segment;
    }
    if last.eq_ignore_ascii_case(b"refs.ptr") {
        return None;
    }
    Some(count as u8)
}

/// The case-folded form of a key's text, as [`SymbolKey::normalized`] gives it: ASCII and
/// every other letter lowercased char by char, so the fold does not depend on context
/// (`str::to_lowercase` makes a word-final `Σ` a `ς`, which `ΑΣ` and `ασ` would then not
/// share), and `ς` folded to `σ` as Unicode's case folding has it.
pub fn fold_case(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect()
}

/// Whether a (decoded) first segment names a SymStore bookkeeping file, in any case. ASCII
/// case folding is enough: no other character lowercases into these names.
fn is_bookkeeping(first: impl AsRef<[u8]>) -> bool {
    let first = first.as_ref();
    BOOKKEEPING
        .iter()
        .any(|b| first.eq_ignore_ascii_case(b.as_bytes()))
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
    // ASCII (every key debuggers and debuginfod ask for) in one pass the compiler
    // vectorizes: decoding chars, then an early-exit byte loop, was most of a debuginfod
    // hit's key construction (callgrind). `char::is_control` is the Cc category, which in
    // ASCII is exactly `is_ascii_control`.
    let (wide, bad) = s.bytes().fold((false, false), |(wide, bad), b| {
        let control = b < 0x20 || b == 0x7f;
        (
            wide | (b >= 0x80),
            bad | control | (b == b'/') | (b == b'\\'),
        )
    });
    let bad = if wide {
        s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
    } else {
        bad
    };
    if bad {
        return Err(KeyError::BadChar(i));
    }
    Ok(())
}

impl SymbolKey {
    /// The key as the client spelled it (decoded), segments joined by `/`.
    pub fn as_str(&self) -> &str {
        self.display()
    }
}

impl fmt::Display for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display())
    }
}

impl fmt::Debug for SymbolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymbolKey({self})")
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
