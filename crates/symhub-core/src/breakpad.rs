//! Breakpad symbol files and the sym-upload-v2 protocol's data: the `.sym` header
//! (`MODULE` and `INFO CODE_ID` lines), the serving name of a module, and the lenient
//! "JSON" body that `sym_upload` sends to `:complete` (unquoted keys, `application/son`).

use crate::key::{KeyError, SymbolKey};

/// The first bytes of a `.sym` file worth reading for its header. `MODULE` is line 1 and
/// `INFO CODE_ID`, when present, line 2; nothing else is needed.
pub const HEADER_LIMIT: usize = 64 * 1024;

/// What a `.sym` file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymHeader {
    pub os: String,
    pub arch: String,
    /// As written (Breakpad writes upper-case hex, GUID + age).
    pub debug_id: String,
    /// The rest of the MODULE line; may contain spaces.
    pub debug_file: String,
    pub code_id: Option<String>,
    /// Windows `.sym` files name the PE after its code id.
    pub code_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymError {
    #[error("the file does not start with a `MODULE <os> <arch> <id> <name>` line")]
    NoModuleLine,
    #[error("the MODULE line is not valid UTF-8")]
    NotUtf8,
    #[error("the MODULE line's debug id `{0}` is not hexadecimal")]
    BadDebugId(String),
    #[error("the module's key is not valid: {0}")]
    BadKey(#[from] KeyError),
}

/// Parses the header of a `.sym` file from its first bytes (at most [`HEADER_LIMIT`]).
pub fn parse_sym_header(head: &[u8]) -> Result<SymHeader, SymError> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().ok_or(SymError::NoModuleLine)?;
    let first = std::str::from_utf8(first).map_err(|_| SymError::NotUtf8)?;
    let rest = first
        .strip_prefix("MODULE ")
        .ok_or(SymError::NoModuleLine)?;
    let mut parts = rest.splitn(4, ' ');
    let (Some(os), Some(arch), Some(debug_id), Some(debug_file)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SymError::NoModuleLine);
    };
    // Breakpad writes one space between fields; stray ones are not part of the name.
    let debug_file = debug_file.trim();
    if os.is_empty() || arch.is_empty() || debug_id.is_empty() || debug_file.is_empty() {
        return Err(SymError::NoModuleLine);
    }
    if !debug_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(SymError::BadDebugId(debug_id.to_owned()));
    }
    let mut header = SymHeader {
        os: os.to_owned(),
        arch: arch.to_owned(),
        debug_id: debug_id.replace('-', ""),
        debug_file: debug_file.to_owned(),
        code_id: None,
        code_file: None,
    };
    // Line 2 holds INFO CODE_ID when there is one; a truncated head simply has none.
    if let Some(Ok(line)) = lines.next().map(std::str::from_utf8) {
        if let Some(info) = line.strip_prefix("INFO CODE_ID ") {
            let mut it = info.trim_end().splitn(2, ' ');
            header.code_id = it.next().filter(|s| !s.is_empty()).map(str::to_owned);
            header.code_file = it.next().filter(|s| !s.is_empty()).map(str::to_owned);
        }
    }
    // The key it will be served under must be valid, or the upload is refused.
    header.key()?;
    Ok(header)
}

impl SymHeader {
    /// `<debug_file>/<debug_id>/<sym_name>`: where Tecken, Socorro and rust-minidump look.
    pub fn key(&self) -> Result<SymbolKey, KeyError> {
        SymbolKey::from_segments(
            self.debug_file.as_str(),
            self.debug_id.as_str(),
            sym_name(&self.debug_file),
        )
    }

    /// Whether the header names the module the uploader says it is (case-insensitively,
    /// dashes in ids ignored).
    pub fn matches(&self, debug_file: &str, debug_id: &str) -> bool {
        self.debug_file.eq_ignore_ascii_case(debug_file.trim())
            && self
                .debug_id
                .eq_ignore_ascii_case(&debug_id.trim().replace('-', ""))
    }
}

/// `foo.pdb` → `foo.sym`; anything else gets `.sym` appended (`libc.so.6` → `libc.so.6.sym`).
pub fn sym_name(debug_file: &str) -> String {
    let lower = debug_file.to_ascii_lowercase();
    match lower.strip_suffix(".pdb") {
        Some(_) => format!("{}.sym", &debug_file[..debug_file.len() - 4]),
        None => format!("{debug_file}.sym"),
    }
}

/// The name rust-minidump asks a module's `.sym` by when it looks it up by code file and code
/// id (`breakpad-symbols`' `code_info_breakpad_sym_lookup`): `foo.dll` → `foo.sym`,
/// anything else gets `.sym` appended (`foo.exe` → `foo.exe.sym`).
pub fn code_sym_name(code_file: &str) -> String {
    let lower = code_file.to_ascii_lowercase();
    match lower.strip_suffix(".dll") {
        Some(_) => format!("{}.sym", &code_file[..code_file.len() - 4]),
        None => format!("{code_file}.sym"),
    }
}

/// The keys a non-Breakpad upload (`sym_upload -t <type> -c <code_file> -i <id>`) is
/// stored under. The first is always `<file>/<id>/<file>` as sent (the SymSrv key for PE and
/// PDB); the others are the SSQP forms debuggers ask for, when the id has their shape.
pub fn native_keys(upload_type: &str, file: &str, id: &str) -> Result<Vec<SymbolKey>, NativeError> {
    use crate::debuginfod::ssqp::{debuginfo_key, executable_key, SsqpError};
    // A dwp is named after its binary (`-c app`) but is not it: `app.dwp/<id>/app.dwp`, never
    // the binary's key.
    let dwp = format!("{file}.dwp");
    let plain = match upload_type.eq_ignore_ascii_case("DWP")
        && !file.to_ascii_lowercase().ends_with(".dwp")
    {
        true => dwp.as_str(),
        false => file,
    };
    let mut keys = vec![SymbolKey::from_segments(plain, id, plain)?];
    let lower = id.to_ascii_lowercase();
    let hex = |len: std::ops::RangeInclusive<usize>| {
        lower.len() % 2 == 0
            && len.contains(&lower.len())
            && lower.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let ssqp = |a: &str, b: String, c: &str| SymbolKey::from_segments(a, b, c);
    // An ELF build id, spelled as debuginfod requests look it up (padded as SSQP pads it).
    let build_id = crate::debuginfod::BuildId::parse_hex(&lower).ok();
    let ssqp_error = |SsqpError::FileName(e)| NativeError::BadKey(e);
    match (upload_type.to_ascii_uppercase().as_str(), &build_id) {
        ("PE" | "PDB" | "DWP", _) => {}
        ("ELF", Some(build_id)) => {
            keys.push(executable_key(build_id, file).map_err(ssqp_error)?);
            keys.push(debuginfo_key(build_id).map_err(ssqp_error)?);
        }
        ("DEBUG_ONLY", Some(build_id)) => keys.push(debuginfo_key(build_id).map_err(ssqp_error)?),
        ("MACHO", _) if hex(32..=32) => keys.push(ssqp(file, format!("mach-uuid-{lower}"), file)?),
        ("DSYM", _) if hex(32..=32) => keys.push(ssqp(
            "_.dwarf",
            format!("mach-uuid-sym-{lower}"),
            "_.dwarf",
        )?),
        ("ELF" | "DEBUG_ONLY" | "MACHO" | "DSYM", _) => {}
        (other, _) => return Err(NativeError::UnknownType(other.to_owned())),
    }
    Ok(keys)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    #[error("unknown symbol_upload_type `{0}` (expected BREAKPAD, ELF, PE, MACHO, PDB, DSYM, DWP or DEBUG_ONLY)")]
    UnknownType(String),
    #[error("the file and id do not make a valid key: {0}")]
    BadKey(#[from] KeyError),
}

/// The body `sym_upload` posts to `uploads/<key>:complete`:
/// `{ symbol_id: {debug_file: "f", debug_id: "id" }, symbol_upload_type: "BREAKPAD" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteRequest {
    pub debug_file: String,
    pub debug_id: String,
    pub upload_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    #[error("the body is not an object of the form {{ symbol_id: {{debug_file: \"…\", debug_id: \"…\" }}, symbol_upload_type: \"…\" }}: {0}")]
    Syntax(String),
    #[error("the body lacks `{0}`")]
    Missing(&'static str),
}

/// Parses the complete body leniently: keys may be quoted or not, strings are JSON
/// strings, whitespace is free. Anything else is refused with the position at fault.
pub fn parse_complete(body: &str) -> Result<CompleteRequest, CompleteError> {
    let mut p = Lenient {
        s: body.as_bytes(),
        i: 0,
    };
    let mut fields = Vec::new();
    p.object(&mut Vec::new(), &mut fields)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    let get = |path: &str, name: &'static str| {
        fields
            .iter()
            .find(|(k, _)| k == path)
            .map(|(_, v): &(String, String)| v.clone())
            .ok_or(CompleteError::Missing(name))
    };
    Ok(CompleteRequest {
        debug_file: get("symbol_id.debug_file", "symbol_id.debug_file")?,
        debug_id: get("symbol_id.debug_id", "symbol_id.debug_id")?,
        upload_type: get("symbol_upload_type", "symbol_upload_type")
            .unwrap_or_else(|_| "BREAKPAD".into()),
    })
}

/// A tiny recursive-descent reader for objects of strings and objects, with optional key
/// quotes. Nesting is bounded so hostile input cannot exhaust the stack.
struct Lenient<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lenient<'_> {
    fn err(&self, what: &str) -> CompleteError {
        CompleteError::Syntax(format!("{what} at byte {}", self.i))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Result<(), CompleteError> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }
    fn object(
        &mut self,
        path: &mut Vec<String>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), CompleteError> {
        if path.len() > 8 {
            return Err(self.err("nesting too deep"));
        }
        self.eat(b'{')?;
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            self.ws();
            path.push(key);
            match self.s.get(self.i) {
                Some(b'{') => self.object(path, out)?,
                Some(b'"') => {
                    let v = self.string()?;
                    out.push((path.join("."), v));
                }
                _ => return Err(self.err("expected a string or an object")),
            }
            path.pop();
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }
    fn key(&mut self) -> Result<String, CompleteError> {
        self.ws();
        if self.s.get(self.i) == Some(&b'"') {
            return self.string();
        }
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a key"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn string(&mut self) -> Result<String, CompleteError> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    let raw = std::str::from_utf8(&self.s[start..self.i])
                        .map_err(|_| self.err("invalid UTF-8"))?;
                    // JSON string syntax, decoded by the JSON rules.
                    return parse_json_string(raw).ok_or_else(|| self.err("bad string escape"));
                }
                _ => {}
            }
        }
        Err(self.err("unterminated string"))
    }
}

fn parse_json_string(raw: &str) -> Option<String> {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains('\\') {
        return Some(inner.to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_and_code_id() {
        let h = parse_sym_header(
            b"MODULE windows x86 5A9832E5287241C1838ED98914E9B7FF1 test_app.pdb\r\n\
              INFO CODE_ID 45D35F6C2D000 test_app.exe\r\nFILE 0 a.cc\n",
        )
        .unwrap();
        assert_eq!(h.debug_id, "5A9832E5287241C1838ED98914E9B7FF1");
        assert_eq!(h.debug_file, "test_app.pdb");
        assert_eq!(h.code_id.as_deref(), Some("45D35F6C2D000"));
        assert_eq!(h.code_file.as_deref(), Some("test_app.exe"));
        assert_eq!(
            h.key().unwrap().to_string(),
            "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
        );
        assert!(h.matches("TEST_APP.PDB", "5a9832e5287241c1838ed98914e9b7ff1"));
        assert!(!h.matches("other.pdb", "5A9832E5287241C1838ED98914E9B7FF1"));
    }

    #[test]
    fn names_with_spaces_and_linux_modules() {
        let h =
            parse_sym_header(b"MODULE Linux x86_64 37DBF1D89E79D021896EB8F060CBFF050 my lib.so\n")
                .unwrap();
        assert_eq!(h.debug_file, "my lib.so");
        assert_eq!(h.code_id, None);
        assert_eq!(sym_name("libc.so.6"), "libc.so.6.sym");
        assert_eq!(sym_name("Foo.PDB"), "Foo.sym");
        assert_eq!(code_sym_name("xul.dll"), "xul.sym");
        assert_eq!(code_sym_name("Xul.DLL"), "Xul.sym");
        assert_eq!(code_sym_name("firefox.exe"), "firefox.exe.sym");
    }

    #[test]
    fn refuses_what_is_not_a_sym_file() {
        assert_eq!(parse_sym_header(b""), Err(SymError::NoModuleLine));
        assert_eq!(
            parse_sym_header(b"\x7fELF\x02\x01"),
            Err(SymError::NoModuleLine)
        );
        assert_eq!(parse_sym_header(b"MODULE \xff\xfe"), Err(SymError::NotUtf8));
        assert_eq!(
            parse_sym_header(b"MODULE Linux x86\n"),
            Err(SymError::NoModuleLine)
        );
        assert!(matches!(
            parse_sym_header(b"MODULE Linux x86 XYZ lib.so\n"),
            Err(SymError::BadDebugId(_))
        ));
        assert!(matches!(
            parse_sym_header(b"MODULE Linux x86 ABC ..\n"),
            Err(SymError::BadKey(_))
        ));
    }

    #[test]
    fn complete_body_as_sym_upload_sends_it() {
        let body = "{ symbol_id: {debug_file: \"hello\", debug_id: \"37DBF1D89E79D021896EB8F060CBFF050\" }, symbol_upload_type: \"BREAKPAD\" }";
        let c = parse_complete(body).unwrap();
        assert_eq!(c.debug_file, "hello");
        assert_eq!(c.debug_id, "37DBF1D89E79D021896EB8F060CBFF050");
        assert_eq!(c.upload_type, "BREAKPAD");
        let json = r#"{"symbol_id": {"debug_file": "a\"b", "debug_id": "1"}, "symbol_upload_type": "ELF"}"#;
        assert_eq!(parse_complete(json).unwrap().debug_file, "a\"b");
    }

    #[test]
    fn native_uploads_get_their_ssqp_keys() {
        let id = "d8f1db379e2179d0896eb8f060cbff0576178c03";
        let keys: Vec<String> = native_keys("elf", "hello", id)
            .unwrap()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                format!("hello/{id}/hello"),
                format!("hello/elf-buildid-{id}/hello"),
                format!("_.debug/elf-buildid-sym-{id}/_.debug"),
            ]
        );
        // Keys spelled as debuginfod requests look them up: an md5 id padded to 20 bytes, a
        // 4-byte one as it is.
        let md5 = "D8F1DB379E2179D0896EB8F060CBFF05";
        let keys = native_keys("DEBUG_ONLY", "hello", md5).unwrap();
        assert_eq!(
            keys[1].to_string(),
            format!(
                "_.debug/elf-buildid-sym-{}00000000/_.debug",
                md5.to_lowercase()
            )
        );
        let keys = native_keys("ELF", "hello", "c0ffee01").unwrap();
        assert_eq!(keys[1].to_string(), "hello/elf-buildid-c0ffee01/hello");
        assert_eq!(
            keys[2].to_string(),
            "_.debug/elf-buildid-sym-c0ffee01/_.debug"
        );
        assert_eq!(native_keys("PE", "a.dll", "5F00AA1000").unwrap().len(), 1);
        assert_eq!(native_keys("elf", "x", "notabuildid").unwrap().len(), 1);
        assert!(matches!(
            native_keys("zip", "a", "1"),
            Err(NativeError::UnknownType(_))
        ));
        assert!(native_keys("pe", "..", "1").is_err());
    }

    #[test]
    fn complete_body_errors_are_clear() {
        assert!(matches!(parse_complete(""), Err(CompleteError::Syntax(_))));
        assert!(matches!(
            parse_complete("{ symbol_id: {} }"),
            Err(CompleteError::Missing(_))
        ));
        assert!(matches!(
            parse_complete("{ a: \"x\" } trailing"),
            Err(CompleteError::Syntax(_))
        ));
        let deep = "{a:".repeat(100) + &"}".repeat(100);
        assert!(matches!(
            parse_complete(&deep),
            Err(CompleteError::Syntax(_))
        ));
    }
}
