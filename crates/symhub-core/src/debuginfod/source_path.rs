//! Source paths as debuginfod names them: the absolute path of a source file as the DWARF
//! records it (`DW_AT_comp_dir` joined with the file name), in canonical form.
//!
//! Canonical form follows elfutils' `canon_pathname` (`debuginfod/debuginfod.cxx`, PR25548,
//! after RFC 3986 5.2.4): `//` → `/`, `/./` → `/`, `/x/../` → `/`, purely lexically (never
//! through the file system: symlinks on a server have nothing to do with the build's). elfutils
//! stores the canonical form when it indexes DWARF and looks requests up by the path as sent
//! *or* its canonical form, so clients may send either; symhub keys sources by the canonical
//! form only.
//!
//! Where elfutils is lenient, this is strict, because the path becomes a storage key:
//! - a `..` above `/` is refused ([`SourcePathError::AboveRoot`]); elfutils clamps it at `/`.
//! - a path naming a directory (ending in `/`, `/.`, `/..`, or just `/`) is refused; elfutils
//!   drops a trailing `/.` or `/..` (its comment: "we're dealing with file names").
//! - control characters (C0, DEL, C1), backslashes and non-UTF-8 bytes are refused. A DWARF
//!   path may in principle hold any byte but NUL; such paths are not served.

use std::fmt;

/// Longest accepted path, in bytes, before canonicalization: Linux's `PATH_MAX`, which also
/// bounds what elfutils' client can send (it formats the URL into a `PATH_MAX` buffer).
pub const MAX_SOURCE_PATH_LEN: usize = 4096;

/// Longest accepted path component, in bytes: Linux's `NAME_MAX`.
pub const MAX_SOURCE_COMPONENT_LEN: usize = 255;

/// Why a source path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcePathError {
    #[error("the source path is not absolute")]
    NotAbsolute,
    #[error("the source path is longer than {MAX_SOURCE_PATH_LEN} bytes")]
    TooLong,
    #[error("a component of the source path is longer than {MAX_SOURCE_COMPONENT_LEN} bytes")]
    ComponentTooLong,
    #[error("the source path holds a control character")]
    ControlChar,
    #[error("the source path holds a backslash")]
    Backslash,
    #[error("the source path climbs above `/`")]
    AboveRoot,
    #[error("the source path names a directory, not a file")]
    NotAFile,
}

/// A canonical absolute source path: starts with `/`, components separated by exactly one
/// `/`, none empty, `.` or `..`, no control characters or backslashes, within
/// [`MAX_SOURCE_PATH_LEN`] and [`MAX_SOURCE_COMPONENT_LEN`]. Case is kept (paths are
/// case-sensitive on the systems that write DWARF with build ids).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePath(String);

impl SourcePath {
    /// Canonicalizes an absolute path (already percent-decoded): from a request, or from the
    /// DWARF of a file being indexed, so both meet in the same form.
    pub fn parse(path: &str) -> Result<Self, SourcePathError> {
        if path.len() > MAX_SOURCE_PATH_LEN {
            return Err(SourcePathError::TooLong);
        }
        if !path.starts_with('/') {
            return Err(SourcePathError::NotAbsolute);
        }
        if path.chars().any(char::is_control) {
            return Err(SourcePathError::ControlChar);
        }
        if path.contains('\\') {
            return Err(SourcePathError::Backslash);
        }
        let mut kept: Vec<&str> = Vec::new();
        let mut last = "";
        for component in path.split('/') {
            last = component;
            match component {
                "" | "." => {}
                ".." => {
                    kept.pop().ok_or(SourcePathError::AboveRoot)?;
                }
                c if c.len() > MAX_SOURCE_COMPONENT_LEN => {
                    return Err(SourcePathError::ComponentTooLong)
                }
                c => kept.push(c),
            }
        }
        // The last component must be a name: `/a/`, `/a/.` and `/a/b/..` all name directories.
        if matches!(last, "" | "." | "..") || kept.is_empty() {
            return Err(SourcePathError::NotAFile);
        }
        let mut out = String::with_capacity(path.len());
        for c in kept {
            out.push('/');
            out.push_str(c);
        }
        Ok(Self(out))
    }

    /// The canonical path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component (the file's name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

impl fmt::Display for SourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourcePath({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, SourcePathError> {
        SourcePath::parse(p).map(|s| s.as_str().to_owned())
    }

    #[test]
    fn canonical_forms_match_elfutils() {
        // The cases elfutils' canon_pathname documents, and its RFC 3986 5.2.4 steps.
        let cases = [
            ("/usr/src/a.c", "/usr/src/a.c"),
            ("//usr//src///a.c", "/usr/src/a.c"),
            ("/usr/./src/./a.c", "/usr/src/a.c"),
            ("/usr/lib/../src/a.c", "/usr/src/a.c"),
            ("/usr/lib/x/../../src/a.c", "/usr/src/a.c"),
            ("/a/./../b.c", "/b.c"),
            ("/build/obj/../../src/main.c", "/src/main.c"),
            ("/x/.hidden/..x/...", "/x/.hidden/..x/..."),
            ("/home/j d/é/a+b%.c", "/home/j d/é/a+b%.c"),
            ("/CaSe/Kept.C", "/CaSe/Kept.C"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input).as_deref(), Ok(want), "{input}");
            // Canonical form is a fixed point.
            assert_eq!(canon(want).as_deref(), Ok(want), "{want}");
        }
        assert_eq!(SourcePath::parse("/a/b/c.rs").unwrap().file_name(), "c.rs");
    }

    #[test]
    fn nothing_escapes_or_names_a_directory() {
        let bad = [
            ("", SourcePathError::NotAbsolute),
            ("a/b.c", SourcePathError::NotAbsolute),
            ("./a.c", SourcePathError::NotAbsolute),
            ("C:/src/a.c", SourcePathError::NotAbsolute),
            ("/..", SourcePathError::AboveRoot),
            ("/../etc/passwd", SourcePathError::AboveRoot),
            ("/a/../../etc/passwd", SourcePathError::AboveRoot),
            ("/a/b/../../../c", SourcePathError::AboveRoot),
            ("/", SourcePathError::NotAFile),
            ("//", SourcePathError::NotAFile),
            ("/a/", SourcePathError::NotAFile),
            ("/a/.", SourcePathError::NotAFile),
            ("/a/b/..", SourcePathError::NotAFile),
            ("/a/..", SourcePathError::NotAFile),
            ("/a\0b", SourcePathError::ControlChar),
            ("/a\nb", SourcePathError::ControlChar),
            ("/a\x7fb", SourcePathError::ControlChar),
            ("/a\u{85}b", SourcePathError::ControlChar),
            ("/a\\..\\b", SourcePathError::Backslash),
        ];
        for (input, want) in bad {
            assert_eq!(canon(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn lengths_are_bounded() {
        let name = "n".repeat(MAX_SOURCE_COMPONENT_LEN);
        assert!(canon(&format!("/{name}")).is_ok());
        assert_eq!(
            canon(&format!("/{name}x")),
            Err(SourcePathError::ComponentTooLong)
        );
        let deep = "/d".repeat(MAX_SOURCE_PATH_LEN / 2);
        assert_eq!(deep.len(), MAX_SOURCE_PATH_LEN);
        assert!(canon(&deep).is_ok());
        assert_eq!(canon(&format!("{deep}/")), Err(SourcePathError::TooLong));
    }
}
