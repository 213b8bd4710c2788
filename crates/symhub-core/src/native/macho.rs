//! Mach-O files: thin binaries, dSYM companions (`MH_DSYM`, or any file with a `__DWARF`
//! segment holding `__debug_info`) and universal (fat) files, whose every architecture is
//! an object of its own with its own UUID — what lldb, dotnet-symbol and Breakpad each look
//! a slice up by. A slice is stored alone (its byte range), as `lipo -thin` would write it.

use object::macho::{
    CpuType, FatHeader, MachHeader32, MachHeader64, LC_SEGMENT, LC_SEGMENT_64, LC_UUID, MH_DSYM,
};
use object::read::macho::{FatArch, MachHeader, Segment};
use object::{BigEndian, Endianness, ReadRef};

use super::{breakpad_key, key, DebugObject, Format, Identified, IdentifyError};

/// More architectures than any universal file holds: a bound on hostile headers.
const MAX_ARCHES: usize = 16;

pub(super) fn identify<'data, R: ReadRef<'data>>(
    data: R,
    file_name: &str,
    format: Format,
) -> Result<Identified, IdentifyError> {
    let bad = |e: object::read::Error| IdentifyError::Malformed(format, e.to_string());
    let mut objects = Vec::new();
    if format == Format::MachOFat {
        let header = data
            .read_at::<FatHeader>(0)
            .map_err(|()| IdentifyError::Malformed(format, "truncated fat header".into()))?;
        let count = header.nfat_arch.get(BigEndian) as usize;
        if count == 0 || count > MAX_ARCHES {
            return Err(IdentifyError::Malformed(
                format,
                format!("{count} architectures"),
            ));
        }
        let arches = object::read::macho::MachOFatFile32::parse(data).map_err(bad)?;
        for arch in arches.arches() {
            let (offset, size) = arch.file_range();
            let mut object = thin(data, offset, file_name)?;
            object.range = Some((offset, size));
            objects.push(object);
        }
    } else {
        objects.push(thin(data, 0, file_name)?);
    }
    Ok(Identified {
        objects,
        embedded: Vec::new(),
    })
}

fn thin<'data, R: ReadRef<'data>>(
    data: R,
    offset: u64,
    file_name: &str,
) -> Result<DebugObject, IdentifyError> {
    let magic = data
        .read_bytes_at(offset, 4)
        .map_err(|()| IdentifyError::Malformed(Format::MachO, "truncated".into()))?;
    let is64 = matches!(magic, [0xfe, 0xed, 0xfa, 0xcf] | [0xcf, 0xfa, 0xed, 0xfe]);
    if is64 {
        thin_as::<MachHeader64<Endianness>, R>(data, offset, file_name)
    } else {
        thin_as::<MachHeader32<Endianness>, R>(data, offset, file_name)
    }
}

fn thin_as<'data, Mach: MachHeader<Endian = Endianness>, R: ReadRef<'data>>(
    data: R,
    offset: u64,
    file_name: &str,
) -> Result<DebugObject, IdentifyError> {
    let bad = |e: object::read::Error| IdentifyError::Malformed(Format::MachO, e.to_string());
    let header = Mach::parse(data, offset).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let mut uuid = None;
    let mut has_dwarf = false;
    let mut end = 0u64;
    let mut commands = header.load_commands(endian, data, offset).map_err(bad)?;
    while let Ok(Some(command)) = commands.next() {
        let cmd = command.cmd();
        if cmd == LC_UUID {
            uuid = command.uuid().ok().flatten().map(|u| u.uuid);
        } else if cmd == LC_SEGMENT_64 {
            if let Ok(Some((segment, section_data))) = command.segment_64() {
                has_dwarf |= dwarf_segment(segment, endian, section_data);
                end = end.max(
                    segment
                        .fileoff(endian)
                        .saturating_add(segment.filesize(endian)),
                );
            }
        } else if cmd == LC_SEGMENT {
            if let Ok(Some((segment, section_data))) = command.segment_32() {
                has_dwarf |= dwarf_segment(segment, endian, section_data);
                let seg_end =
                    u64::from(segment.fileoff(endian)) + u64::from(segment.filesize(endian));
                end = end.max(seg_end);
            }
        }
    }
    let uuid = uuid.ok_or(IdentifyError::NoId(
        Format::MachO,
        "no LC_UUID load command",
    ))?;
    let lower: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    let upper = lower.to_ascii_uppercase();
    let is_dsym = header.filetype(endian) == MH_DSYM;
    let mut keys = Vec::new();
    if !is_dsym {
        keys.extend(key(file_name, &format!("mach-uuid-{lower}"), file_name));
    }
    if has_dwarf {
        keys.extend(key("_.dwarf", &format!("mach-uuid-sym-{lower}"), "_.dwarf"));
    }
    if keys.is_empty() {
        return Err(IdentifyError::NoId(Format::MachO, "a dSYM without DWARF"));
    }
    let debug_id = format!("{upper}0");
    Ok(DebugObject {
        format: Format::MachO,
        arch: Some(arch(header.cputype(endian)).to_owned()),
        debug_file: file_name.to_owned(),
        breakpad_key: breakpad_key(file_name, &debug_id),
        debug_id,
        code_file: Some(file_name.to_owned()),
        code_id: Some(upper),
        index_id: lower,
        has_debug_info: has_dwarf,
        keys,
        range: None,
    })
}

fn dwarf_segment<S: Segment<Endian = Endianness>>(
    segment: &S,
    endian: Endianness,
    section_data: &[u8],
) -> bool {
    use object::read::macho::Section;
    let name = segment.name();
    if name != b"__DWARF" {
        return false;
    }
    segment
        .sections(endian, section_data)
        .is_ok_and(|sections| {
            sections
                .iter()
                .any(|s| s.name() == b"__debug_info" && s.size(endian).into() > 0)
        })
}

fn arch(cputype: CpuType) -> &'static str {
    use object::macho::*;
    match cputype {
        CPU_TYPE_X86_64 => "x86_64",
        CPU_TYPE_X86 => "x86",
        CPU_TYPE_ARM64 => "arm64",
        CPU_TYPE_ARM => "arm",
        CPU_TYPE_POWERPC => "ppc",
        CPU_TYPE_POWERPC64 => "ppc64",
        _ => "unknown",
    }
}
