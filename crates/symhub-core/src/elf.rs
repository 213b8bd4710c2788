//! Identifying ELF files from their bytes: the GNU build id, whether a file carries debug info
//! or runnable code, its `DT_SONAME`, and one section's stored bytes — what a symbol server
//! needs to key a file (SSQP, debuginfod) and to answer debuginfod's `section/<name>`.
//!
//! Pure and bounded: the caller hands over the whole file as a byte slice, or any `object`
//! `ReadRef` (a `ReadCache` over an open file reads only the headers, notes and tables asked
//! for, never a section's contents unless [`ElfFile::section`] is called); every operation
//! here is linear in the file's size and never panics on hostile input (section names are compared in place, never scanned to
//! a NUL, so many sections cannot make a lookup quadratic). Parsing is done with the `object`
//! crate's raw ELF structures.
//!
//! The rules follow elfutils 0.188, where it has one (`libdwelf/dwelf_elf_gnu_build_id.c`,
//! `debuginfod/debuginfod.cxx` `elf_classify` and `extract_section`); each item says where
//! it differs and why.

use object::elf::{
    FileHeader32, FileHeader64, DT_SONAME, ET_DYN, ET_EXEC, NT_GNU_BUILD_ID, SHT_NOBITS, SHT_NOTE,
};
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, ReadRef};

use crate::debuginfod::BuildId;

/// Why bytes are not an ELF file this module can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("an ELF file of an unsupported class, byte order or version")]
    Unsupported,
    /// The header or the section header table lies outside the data (a truncated file), or
    /// has impossible sizes. Carries `object`'s description.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
}

/// What an ELF file says about itself. Borrowed from the caller's bytes.
#[derive(Debug, Clone)]
pub struct ElfFile<'data, R: ReadRef<'data> = &'data [u8]> {
    data: R,
    class: Class,
    build_id: Option<&'data [u8]>,
    has_debug_info: bool,
    is_executable: bool,
    soname: Option<&'data [u8]>,
}

#[derive(Debug, Clone, Copy)]
enum Class {
    Elf32,
    Elf64,
}

impl<'data> ElfFile<'data> {
    /// Reads the header, the section header table and what the accessors report. Errors only
    /// for data that is not ELF, or whose header or section header table is unreadable;
    /// damage elsewhere (a bad note, a `.dynamic` out of bounds) only hides what it holds.
    pub fn parse(data: &'data [u8]) -> Result<Self, ElfError> {
        Self::read(data)
    }
}

impl<'data, R: ReadRef<'data>> ElfFile<'data, R> {
    /// [`ElfFile::parse`] over any `ReadRef`, such as `&ReadCache<File>`: only the parts of
    /// the file the accessors need are read.
    pub fn read(data: R) -> Result<Self, ElfError> {
        let magic = data.read_bytes_at(0, 4).map_err(|_| ElfError::NotElf)?;
        if magic != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        // Read apart from the magic: the magic alone is an ELF file of no known class.
        let class = match data.read_bytes_at(4, 1) {
            Ok([1]) => Class::Elf32,
            Ok([2]) => Class::Elf64,
            _ => return Err(ElfError::Unsupported),
        };
        match class {
            Class::Elf32 => Self::parse_as::<FileHeader32<Endianness>>(data, class),
            Class::Elf64 => Self::parse_as::<FileHeader64<Endianness>>(data, class),
        }
    }

    fn parse_as<Elf: FileHeader<Endian = Endianness>>(
        data: R,
        class: Class,
    ) -> Result<Self, ElfError> {
        let v = View::<Elf, R>::new(data)?;
        let e_type = v.header.e_type(v.endian);
        Ok(Self {
            data,
            class,
            build_id: v.build_id(),
            has_debug_info: [&b".debug_info"[..], b".zdebug_info"]
                .iter()
                .any(|n| v.has_contents(n)),
            is_executable: (e_type == ET_EXEC || e_type == ET_DYN) && v.has_contents(b".text"),
            soname: v.soname(),
        })
    }

    /// The ELF class as Breakpad and debuggers name the architecture's word size: 32 or 64.
    pub fn bits(&self) -> u8 {
        match self.class {
            Class::Elf32 => 32,
            Class::Elf64 => 64,
        }
    }

    /// The descriptor of the first `NT_GNU_BUILD_ID` note owned by `GNU`, as raw bytes.
    /// Like elfutils (`dwelf_elf_gnu_build_id`): the `SHT_NOTE` sections in order when the
    /// file has section headers, else the `PT_NOTE` segments; a malformed note ends the
    /// search in its section only; an empty descriptor means no build id. A split `.debug`
    /// file keeps the note, so it has the same id as its binary.
    pub fn build_id(&self) -> Option<&'data [u8]> {
        self.build_id
    }

    /// The build id as debuginfod and SSQP spell it; `None` without one, or for an id longer
    /// than [`crate::debuginfod::MAX_BUILD_ID_BYTES`] that no client could ask for.
    pub fn debuginfod_build_id(&self) -> Option<BuildId> {
        BuildId::from_bytes(self.build_id?).ok()
    }

    /// True when the file carries DWARF: a `.debug_info` section with contents in the file
    /// (not `SHT_NOBITS`, not empty; `SHF_COMPRESSED` counts), or GNU's older compressed
    /// `.zdebug_info`. Such a file is debuginfod's `debuginfo` and SSQP's
    /// `_.debug/elf-buildid-sym-…`. dotnet's key generator tests the same two names; elfutils
    /// is looser (any `.debug_*`/`.zdebug_*` section), which would also count files holding
    /// only `.debug_frame` or line tables.
    pub fn has_debug_info(&self) -> bool {
        self.has_debug_info
    }

    /// True for runnable code: `ET_EXEC` or `ET_DYN` with a `.text` section that has contents.
    /// A `--only-keep-debug` file keeps `.text` as `SHT_NOBITS`, so it is not runnable.
    /// elfutils (`elf_classify`) asks for any allocated `SHT_PROGBITS` section instead; both
    /// agree on what compilers and `objcopy`/`strip` produce, and `.text` states the intent.
    pub fn is_executable(&self) -> bool {
        self.is_executable
    }

    /// `DT_SONAME` from the `SHT_DYNAMIC` section (`libgreet.so.1`), if there is one, it has
    /// contents, and the name is UTF-8 and NUL-terminated inside its string table.
    pub fn soname(&self) -> Option<&'data str> {
        std::str::from_utf8(self.soname?).ok()
    }

    /// The bytes of the first section named exactly `name`, as stored in the file, or `None`
    /// when there is no such section, it is `SHT_NOBITS`, it is empty, or it lies outside the
    /// file. Compressed sections (`SHF_COMPRESSED`, with their `Elf_Chdr`, or `.zdebug_*`)
    /// are returned compressed: elfutils' server copies `elf_rawdata`, the undecompressed
    /// bytes, for `section/<name>` (`extract_section` in `debuginfod.cxx`; observed with
    /// 0.188), and its client does the same when it extracts a section itself. It answers
    /// 404 for `SHT_NOBITS` and empty sections, as `None` here.
    pub fn section(&self, name: &str) -> Option<&'data [u8]> {
        // Section 0 and unnamed sections have the empty name: never something to serve.
        if name.is_empty() {
            return None;
        }
        let found = match self.class {
            Class::Elf32 => View::<FileHeader32<Endianness>, R>::new(self.data)
                .ok()
                .and_then(|v| v.contents(name.as_bytes())),
            Class::Elf64 => View::<FileHeader64<Endianness>, R>::new(self.data)
                .ok()
                .and_then(|v| v.contents(name.as_bytes())),
        };
        found
    }
}

/// The parts of a file every question starts from.
struct View<'data, Elf: FileHeader, R: ReadRef<'data>> {
    data: R,
    endian: Endianness,
    header: &'data Elf,
    sections: &'data [Elf::SectionHeader],
    /// The section name string table's bytes; empty if it is missing or unreadable.
    names: &'data [u8],
}

fn malformed(e: object::read::Error) -> ElfError {
    ElfError::Malformed(e.to_string())
}

impl<'data, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'data>> View<'data, Elf, R> {
    fn new(data: R) -> Result<Self, ElfError> {
        let header = Elf::parse(data).map_err(|_| ElfError::Unsupported)?;
        let endian = header.endian().map_err(|_| ElfError::Unsupported)?;
        let sections = header.section_headers(endian, data).map_err(malformed)?;
        let names = match header.shstrndx(endian, data) {
            Ok(i) if !sections.is_empty() => sections
                .get(i as usize)
                .and_then(|s| s.data(endian, data).ok())
                .unwrap_or_default(),
            _ => &[],
        };
        Ok(Self {
            data,
            endian,
            header,
            sections,
            names,
        })
    }

    /// The first section whose name is exactly `name`, compared in place in the string table.
    fn named(&self, name: &[u8]) -> Option<&'data Elf::SectionHeader> {
        self.sections.iter().find(|s| {
            let at = s.sh_name(self.endian) as usize;
            let end = at.checked_add(name.len());
            end.and_then(|end| self.names.get(at..=end))
                .is_some_and(|n| n[..name.len()] == *name && n[name.len()] == 0)
        })
    }

    /// Whether a named section has contents inside the file, judged from its header alone
    /// (a `ReadCache` would otherwise read a 500 MB `.debug_info` to answer).
    fn has_contents(&self, name: &[u8]) -> bool {
        let Some(s) = self.named(name) else {
            return false;
        };
        let len = self.data.len().unwrap_or(0);
        s.file_range(self.endian)
            .is_some_and(|(at, size)| size > 0 && at.checked_add(size).is_some_and(|e| e <= len))
    }

    /// The stored bytes of a named section that has contents in the file.
    fn contents(&self, name: &[u8]) -> Option<&'data [u8]> {
        let s = self.named(name)?;
        if s.sh_type(self.endian) == SHT_NOBITS {
            return None;
        }
        s.data(self.endian, self.data)
            .ok()
            .filter(|d| !d.is_empty())
    }

    fn build_id(&self) -> Option<&'data [u8]> {
        let e = self.endian;
        let mut found = None;
        let mut search = |notes: Option<object::read::elf::NoteIterator<'data, Elf>>| {
            let Some(mut notes) = notes else {
                return false;
            };
            // An error ends this section's notes (the iterator stops), not the search.
            while let Ok(Some(note)) = notes.next() {
                if note.n_type(e) == NT_GNU_BUILD_ID && note.name_bytes() == b"GNU\0" {
                    found = Some(note.desc());
                    return true;
                }
            }
            false
        };
        if !self.sections.is_empty() {
            for s in self.sections {
                if s.sh_type(e) == SHT_NOTE && search(s.notes(e, self.data).ok().flatten()) {
                    break;
                }
            }
        } else if let Ok(segments) = self.header.program_headers(e, self.data) {
            for p in segments {
                if search(p.notes(e, self.data).ok().flatten()) {
                    break;
                }
            }
        }
        found.filter(|id| !id.is_empty())
    }

    fn soname(&self) -> Option<&'data [u8]> {
        let e = self.endian;
        let (entries, link) = self
            .sections
            .iter()
            .find_map(|s| s.dynamic(e, self.data).ok().flatten())?;
        let strings = self.sections.get(link.0)?.data(e, self.data).ok()?;
        let offset = entries
            .iter()
            .take_while(|d| d.d_tag(e) != object::elf::DT_NULL)
            .find(|d| d.d_tag(e) == DT_SONAME)?
            .d_val(e)
            .into();
        let tail = strings.get(usize::try_from(offset).ok()?..)?;
        let nul = tail.iter().position(|&b| b == 0)?;
        Some(&tail[..nul])
    }
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;
