//! Native debug files identified from their bytes: which format a file is, who it is (debug
//! id, code id, architecture), and every key any client asks for it by — what `symstore add`,
//! `sentry-cli debug-files upload` and Mozilla's upload scripts each do for a part of it.
//!
//! Formats and their keys (`docs` are the SSQP key conventions of dotnet/symstore and
//! Microsoft's SymSrv; Breakpad ids as Mozilla's dump_syms writes them):
//!
//! | format | SymSrv/SSQP key | Breakpad `.sym` key |
//! |---|---|---|
//! | PE image | `name.dll/<TIMESTAMP %08X><SizeOfImage %x>/name.dll` | — |
//! | Windows PDB | `name.pdb/<GUID><age %x>/name.pdb` | `name.pdb/<GUID><AGE>/name.sym` |
//! | portable PDB | `name.pdb/<guid>FFFFFFFF/name.pdb` | — |
//! | ELF with code | `name/elf-buildid-<id>/name` | `name/<id as GUID>0/name.sym` with DWARF |
//! | ELF with DWARF | `_.debug/elf-buildid-sym-<id>/_.debug` | (same) |
//! | Mach-O | `name/mach-uuid-<uuid>/name` | `name/<UUID>0/name.sym` with DWARF |
//! | Mach-O with DWARF (dSYM) | `_.dwarf/mach-uuid-sym-<uuid>/_.dwarf` | (same) |
//!
//! Everything here reads through `object`'s `ReadRef`, so a caller that passes a `ReadCache`
//! over a file reads only headers, load commands, note and debug directories — never a whole
//! multi-gigabyte PDB or `.debug_info` — and hostile input gives an error, never a panic.

mod macho;
mod msf;
mod windows;

use object::ReadRef;

use crate::breakpad::sym_name;
use crate::debuginfod::ssqp::{debuginfo_key, executable_key};
use crate::debuginfod::BuildId;
use crate::elf::ElfFile;
use crate::key::SymbolKey;

pub use windows::MSF_MAGIC;

/// What a file is, from its first bytes (never its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pe,
    Pdb,
    PortablePdb,
    Elf,
    MachO,
    /// A universal (fat) Mach-O: several architectures, each identified on its own.
    MachOFat,
    /// A Breakpad `.sym` text file.
    Breakpad,
    /// A zip: `.nupkg`, `.snupkg`, or an SSQP package; its members are files of their own.
    Zip,
}

impl Format {
    /// The format the first bytes announce, or `None` for anything else (text, archives
    /// symhub does not unpack, truncated files).
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let magic4 = head.get(..4)?;
        Some(match magic4 {
            b"\x7fELF" => Format::Elf,
            b"BSJB" => Format::PortablePdb,
            b"PK\x03\x04" => Format::Zip,
            b"MODU" if head.starts_with(b"MODULE ") => Format::Breakpad,
            [b'M', b'Z', ..] => Format::Pe,
            // Mach-O magic in either byte order, 32 and 64 bits.
            [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => Format::MachO,
            // Java class files share 0xcafebabe; a fat header's arch count tells them apart
            // (Java's version numbers there are ≥ 45).
            [0xca, 0xfe, 0xba, 0xbe]
                if head
                    .get(4..8)
                    .is_some_and(|n| n[..3] == [0, 0, 0] && n[3] < 30) =>
            {
                Format::MachOFat
            }
            _ if head.starts_with(MSF_MAGIC) => Format::Pdb,
            _ => return None,
        })
    }

    /// The format as messages name it, with its article.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pe => "a PE",
            Format::Pdb => "a Windows PDB",
            Format::PortablePdb => "a portable PDB",
            Format::Elf => "an ELF",
            Format::MachO => "a Mach-O",
            Format::MachOFat => "a universal Mach-O",
            Format::Breakpad => "a Breakpad",
            Format::Zip => "a zip",
        }
    }

    /// The name of the format as `sym_upload`'s `symbol_upload_type` and the store's
    /// `kind` column spell it.
    pub fn kind(self) -> &'static str {
        match self {
            Format::Pe => "PE",
            Format::Pdb => "PDB",
            Format::PortablePdb => "PPDB",
            Format::Elf => "ELF",
            Format::MachO | Format::MachOFat => "MACHO",
            Format::Breakpad => "BREAKPAD",
            Format::Zip => "ZIP",
        }
    }
}

/// Why a file could not be identified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    #[error("not a debug file symhub knows (PE, PDB, portable PDB, ELF, Mach-O, Breakpad .sym, or a zip of them)")]
    Unknown,
    #[error("{format} file whose headers cannot be read: {reason}", format = .0.name(), reason = .1)]
    Malformed(Format, String),
    #[error("{format} file with nothing to key it by: {reason}", format = .0.name(), reason = .1)]
    NoId(Format, &'static str),
}

/// One identified object. A file is usually one; a fat Mach-O is one per architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugObject {
    pub format: Format,
    /// `x86_64`, `x86`, `arm64`…, as Breakpad's MODULE line names it, when known.
    pub arch: Option<String>,
    /// The name the debug file goes by: the PDB name, else the file's own name.
    pub debug_file: String,
    /// The module's Breakpad debug id: 33 upper-case hex digits (GUID and age, or the ELF
    /// build id's first 16 bytes as a GUID and `0`, or the Mach-O UUID and `0`).
    pub debug_id: String,
    /// The binary's name and code id (PE: `%08X%x` timestamp and size; ELF: the full build
    /// id; Mach-O: the UUID), where the file says it.
    pub code_file: Option<String>,
    pub code_id: Option<String>,
    /// The id the store indexes files of this module by, lower-case: the breakpad debug id,
    /// except the ELF build id (which debuginfod's `executable` finds binaries by).
    pub index_id: String,
    /// Whether the file carries what a Breakpad `.sym` is made from (a PDB, DWARF).
    pub has_debug_info: bool,
    /// Every key these bytes are stored under.
    pub keys: Vec<SymbolKey>,
    /// Where the Breakpad `.sym` of this module is kept.
    pub breakpad_key: Option<SymbolKey>,
    /// `(offset, length)` of this object inside the file, when it is not the whole file
    /// (an architecture of a fat Mach-O): the bytes to store under [`Self::keys`].
    pub range: Option<(u64, u64)>,
}

/// A part of a file that is a debug file of its own and must be unpacked to be identified
/// (a portable PDB embedded in a .NET PE, deflate-compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// The name to give the unpacked file (`Foo.pdb`, from the PE's CodeView record).
    pub name: String,
    /// `(offset, length)` of the raw deflate stream in the file.
    pub deflated: (u64, u64),
    /// The size the stream unpacks to, as the file claims it (a bound, not a promise).
    pub size: u64,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identified {
    pub objects: Vec<DebugObject>,
    pub embedded: Vec<Embedded>,
}

/// Identifies `data`, a file uploaded as `file_name` (a base name: the name the keys use
/// where the format does not carry one). Zip archives and Breakpad files are recognised by
/// [`Format::sniff`] but not read here: the caller unpacks the one and parses the other's
/// header with [`crate::breakpad`].
pub fn identify<'data, R: ReadRef<'data> + 'data>(
    data: R,
    file_name: &str,
) -> Result<Identified, IdentifyError> {
    let head = data
        .read_bytes_at(0, 64.min(data.len().unwrap_or(0)))
        .unwrap_or(&[]);
    let format = Format::sniff(head).ok_or(IdentifyError::Unknown)?;
    let file_name = base_name(file_name);
    match format {
        Format::Elf => Ok(Identified {
            objects: vec![elf_object(data, file_name)?],
            embedded: Vec::new(),
        }),
        Format::Pe => windows::pe(data, file_name),
        Format::Pdb => Ok(Identified {
            objects: vec![windows::pdb(data, file_name)?],
            embedded: Vec::new(),
        }),
        Format::PortablePdb => windows::portable_pdb(data, file_name),
        Format::MachO | Format::MachOFat => macho::identify(data, file_name, format),
        Format::Breakpad | Format::Zip => Err(IdentifyError::Unknown),
    }
}

/// The last path segment, `/` or `\` separated (a name may come from a Windows path).
pub fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// A Breakpad debug id from a GUID stored in Windows' mixed-endian layout and an age.
pub fn breakpad_id_from_guid(guid: &[u8; 16], age: u32) -> String {
    format!("{}{age:X}", guid_upper(guid))
}

/// The GUID as SymSrv and Breakpad print it: `%08X%04X%04X` of the little-endian fields,
/// then the last 8 bytes, 32 upper-case hex digits.
pub fn guid_upper(g: &[u8; 16]) -> String {
    let mut s = format!(
        "{:08X}{:04X}{:04X}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
    );
    for b in &g[8..] {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The Breakpad debug id of an ELF file: the build id's first 16 bytes (zero-padded) read as
/// a GUID, then age 0 — what Breakpad's and Mozilla's dump_syms write and minidump
/// processors compute from a module's build id.
pub fn elf_breakpad_id(build_id: &[u8]) -> String {
    let mut g = [0u8; 16];
    let n = build_id.len().min(16);
    g[..n].copy_from_slice(&build_id[..n]);
    format!("{}0", guid_upper(&g))
}

/// A file whose own tables reach past its end: a cut copy, never stored (it would be served
/// broken to every debugger that asks).
fn truncated<'data, R: ReadRef<'data>>(format: Format, end: u64, data: R) -> IdentifyError {
    IdentifyError::Malformed(
        format,
        format!(
            "truncated: its contents run to byte {end}, the file has {}",
            data.len().unwrap_or(0)
        ),
    )
}

fn key(file: &str, id: &str, name: &str) -> Option<SymbolKey> {
    SymbolKey::from_segments(file, id, name).ok()
}

fn breakpad_key(debug_file: &str, debug_id: &str) -> Option<SymbolKey> {
    key(debug_file, debug_id, &sym_name(debug_file))
}

fn elf_object<'data, R: ReadRef<'data>>(
    data: R,
    file_name: &str,
) -> Result<DebugObject, IdentifyError> {
    let elf =
        ElfFile::read(data).map_err(|e| IdentifyError::Malformed(Format::Elf, e.to_string()))?;
    let raw = elf.build_id().ok_or(IdentifyError::NoId(
        Format::Elf,
        "no GNU build id note (link with --build-id)",
    ))?;
    let id = BuildId::from_bytes(raw)
        .map_err(|_| IdentifyError::NoId(Format::Elf, "a build id longer than 64 bytes"))?;
    if !elf.is_executable() && !elf.has_debug_info() {
        // objcopy --only-keep-debug of a build without -g: it would pass for the binary.
        return Err(IdentifyError::NoId(
            Format::Elf,
            "neither runnable code nor DWARF (a split debug file of a build without -g?)",
        ));
    }
    let mut keys = Vec::new();
    // A split debug file (`objcopy --only-keep-debug`) has no runnable code: it is only
    // debuginfo, never the binary a debugger or profiler loads.
    if elf.is_executable() {
        keys.extend(executable_key(&id, file_name).ok());
    }
    if elf.has_debug_info() {
        keys.extend(debuginfo_key(&id).ok());
    }
    if keys.is_empty() {
        return Err(IdentifyError::NoId(
            Format::Elf,
            "its file name cannot be part of a symbol key (empty, `.` or `..`, too long, or with a slash, backslash or control character)",
        ));
    }
    // Breakpad names a Linux module by its binary; a split file is conventionally the
    // binary's name plus `.debug`.
    let module = match file_name.strip_suffix(".debug") {
        Some(stem) if !elf.is_executable() && !stem.is_empty() => stem,
        _ => file_name,
    };
    let debug_id = elf_breakpad_id(raw);
    Ok(DebugObject {
        format: Format::Elf,
        arch: elf.arch().map(str::to_owned),
        debug_file: module.to_owned(),
        breakpad_key: breakpad_key(module, &debug_id),
        debug_id,
        code_file: Some(module.to_owned()),
        code_id: Some(id.as_str().to_owned()),
        index_id: id.as_str().to_owned(),
        has_debug_info: elf.has_debug_info(),
        keys,
        range: None,
    })
}

#[cfg(test)]
mod tests;
