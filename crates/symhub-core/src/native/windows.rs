//! Windows files: PE images (their own key, the PDB they name, an embedded portable PDB),
//! Windows PDBs (MSF 7.0) and portable PDBs.
//!
//! The PE key is the COFF header's `TimeDateStamp` as `%08X` and the optional header's
//! `SizeOfImage` as `%x` (symstore, SymSrv). A PDB is keyed by the GUID of its PDB info
//! stream and the age of its DBI stream, which is the age the linker writes into the PE's
//! CodeView record (the info stream's own age can be higher after incremental writes;
//! symbolic and Mozilla's dump_syms make the same choice).

use object::pe::{ImageDebugDirectory, IMAGE_DIRECTORY_ENTRY_DEBUG};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile32, PeFile64};
use object::read::Object;
use object::{LittleEndian as LE, ReadRef};

use super::{
    base_name, breakpad_id_from_guid, breakpad_key, guid_upper, key, DebugObject, Embedded, Format,
    Identified, IdentifyError,
};
use crate::ppdb::{guid_hex, portable_pdb_guid};

/// The first bytes of an MSF 7.0 file (a Windows PDB).
pub const MSF_MAGIC: &[u8] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";

/// `IMAGE_DEBUG_TYPE_EMBEDDED_PORTABLE_PDB` (PE/COFF spec, "Debug Type"): the entry's data is
/// `MPDB`, the uncompressed size (u32 LE), then a raw deflate stream.
const EMBEDDED_PORTABLE_PDB: u32 = 17;

/// More debug directory entries than any linker writes: a bound on hostile files.
const MAX_DEBUG_ENTRIES: usize = 64;

pub(super) fn pe<'data, R: ReadRef<'data>>(
    data: R,
    file_name: &str,
) -> Result<Identified, IdentifyError> {
    let magic = data
        .read_at::<object::pe::ImageDosHeader>(0)
        .ok()
        .and_then(|dos| {
            let at = u64::from(dos.e_lfanew.get(LE));
            data.read_at::<object::pe::ImageNtHeaders32>(at).ok()
        })
        .map(|nt| nt.optional_header.magic.get(LE));
    match magic {
        Some(object::pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC) => {
            pe_as::<PeFile64<'data, R>, _>(data, file_name, PeFile64::parse)
        }
        _ => pe_as::<PeFile32<'data, R>, _>(data, file_name, PeFile32::parse),
    }
}

fn pe_as<'data, F, R>(
    data: R,
    file_name: &str,
    parse: fn(R) -> object::Result<F>,
) -> Result<Identified, IdentifyError>
where
    R: ReadRef<'data>,
    F: PeView<'data, R>,
{
    let file = parse(data).map_err(|e| IdentifyError::Malformed(Format::Pe, e.to_string()))?;
    let (timestamp, size_of_image) = file.image_id();
    let code_id = format!("{timestamp:08X}{size_of_image:x}");
    let keys: Vec<_> = key(file_name, &code_id, file_name).into_iter().collect();
    if keys.is_empty() {
        return Err(IdentifyError::NoId(
            Format::Pe,
            "a file name that cannot be a key",
        ));
    }
    let codeview = file.codeview();
    // The PE names its module by the PDB it was linked with: Breakpad and minidumps key the
    // module by that PDB's name and id, the code file and code id say which binary it is.
    let (debug_file, debug_id) = match &codeview {
        Some((guid, age, path)) => (
            base_name(path).to_owned(),
            breakpad_id_from_guid(guid, *age),
        ),
        None => (file_name.to_owned(), String::new()),
    };
    let mut embedded = Vec::new();
    for entry in file.debug_entries().into_iter().take(MAX_DEBUG_ENTRIES) {
        if entry.typ.get(LE).0 != EMBEDDED_PORTABLE_PDB {
            continue;
        }
        let at = u64::from(entry.pointer_to_raw_data.get(LE));
        let len = u64::from(entry.size_of_data.get(LE));
        let Ok(head) = data.read_bytes_at(at, 8) else {
            continue;
        };
        if &head[..4] != b"MPDB" || len < 8 {
            continue;
        }
        let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let name = if debug_file.to_ascii_lowercase().ends_with(".pdb") {
            debug_file.clone()
        } else {
            format!(
                "{}.pdb",
                file_name.rsplit_once('.').map_or(file_name, |(s, _)| s)
            )
        };
        embedded.push(Embedded {
            name,
            deflated: (at + 8, len - 8),
            size,
        });
    }
    Ok(Identified {
        objects: vec![DebugObject {
            format: Format::Pe,
            arch: Some(file.arch().to_owned()),
            // The PDB's `.sym`, which this binary completes (unwind tables, code id).
            breakpad_key: codeview
                .as_ref()
                .and_then(|_| breakpad_key(&debug_file, &debug_id)),
            index_id: debug_id.to_ascii_lowercase(),
            debug_file,
            debug_id,
            code_file: Some(file_name.to_owned()),
            code_id: Some(code_id),
            has_debug_info: false,
            keys,
            range: None,
        }],
        embedded,
    })
}

/// What is read of a PE, for both word sizes.
trait PeView<'data, R: ReadRef<'data>> {
    fn image_id(&self) -> (u32, u32);
    /// GUID, age and PDB path of the `RSDS` CodeView record.
    fn codeview(&self) -> Option<([u8; 16], u32, String)>;
    fn debug_entries(&self) -> Vec<ImageDebugDirectory>;
    fn arch(&self) -> &'static str;
}

impl<'data, Pe: ImageNtHeaders, R: ReadRef<'data>> PeView<'data, R>
    for object::read::pe::PeFile<'data, Pe, R>
{
    fn image_id(&self) -> (u32, u32) {
        let nt = self.nt_headers();
        (
            nt.file_header().time_date_stamp.get(LE),
            nt.optional_header().size_of_image(),
        )
    }

    fn codeview(&self) -> Option<([u8; 16], u32, String)> {
        // A ReadyToRun .NET assembly has two records, the native image's `.ni.pdb` first:
        // the module is the IL PDB's (what the assembly's debugger and SSQP keys use).
        let mut found = Vec::new();
        for entry in self.debug_entries() {
            if entry.typ.get(LE).0 != object::pe::IMAGE_DEBUG_TYPE_CODEVIEW.0 {
                continue;
            }
            let at = u64::from(entry.pointer_to_raw_data.get(LE));
            let len = u64::from(entry.size_of_data.get(LE)).min(24 + 4096);
            let Ok(record) = self.data().read_bytes_at(at, len) else {
                continue;
            };
            if len < 24 || &record[..4] != b"RSDS" {
                continue;
            }
            let guid: [u8; 16] = record[4..20].try_into().expect("16 bytes");
            let age = u32::from_le_bytes(record[20..24].try_into().expect("4 bytes"));
            let path = &record[24..];
            let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
            found.push((guid, age, String::from_utf8_lossy(path).into_owned()));
        }
        let il = found
            .iter()
            .position(|(_, _, p)| !p.to_ascii_lowercase().ends_with(".ni.pdb"));
        il.or((!found.is_empty()).then_some(0))
            .map(|i| found.swap_remove(i))
    }

    fn debug_entries(&self) -> Vec<ImageDebugDirectory> {
        let Some(dir) = self.data_directory(IMAGE_DIRECTORY_ENTRY_DEBUG) else {
            return Vec::new();
        };
        let sections = self.section_table();
        let Some((offset, available)) = sections.pe_file_range_at(dir.virtual_address.get(LE))
        else {
            return Vec::new();
        };
        let want = dir.size.get(LE).min(available) as usize;
        let count = (want / std::mem::size_of::<ImageDebugDirectory>()).min(MAX_DEBUG_ENTRIES);
        self.data()
            .read_slice_at::<ImageDebugDirectory>(u64::from(offset), count)
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }

    fn arch(&self) -> &'static str {
        match self.architecture() {
            object::Architecture::X86_64 => "x86_64",
            object::Architecture::I386 => "x86",
            object::Architecture::Aarch64 => "arm64",
            object::Architecture::Arm => "arm",
            _ => "unknown",
        }
    }
}

/// An `object` `ReadRef` as the `pdb` crate's `Source`: the PDB's pages are read as the
/// streams asked for are, never the whole file.
///
/// A view (the stream directory, a stream) larger than the file is refused before anything
/// is allocated: the crate allocates and zero-fills a view before reading it, checks page
/// numbers only against the count the header claims, and lets pages repeat, so a PDB of a
/// few KiB could otherwise make it fill 4 GiB with one page over and over. No well-formed
/// MSF file has such a view: each page belongs to one stream.
pub struct ReadRefSource<R> {
    data: R,
    len: u64,
}

impl<'data, R: ReadRef<'data>> ReadRefSource<R> {
    pub fn new(data: R) -> Self {
        let len = data.len().unwrap_or(0);
        Self { data, len }
    }
}

impl<R> std::fmt::Debug for ReadRefSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadRefSource({} bytes)", self.len)
    }
}

#[derive(Debug)]
struct View(Vec<u8>);

impl pdb::SourceView<'_> for View {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<'s, 'data, R: ReadRef<'data> + 's> pdb::Source<'s> for ReadRefSource<R> {
    fn view(
        &mut self,
        slices: &[pdb::SourceSlice],
    ) -> std::io::Result<Box<dyn pdb::SourceView<'s>>> {
        // `UnexpectedEof`, as a read past the end gives: the crate reports a file too short
        // for its header page as "not a PDB" by that kind.
        let outside = |what| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what);
        let total = slices
            .iter()
            .try_fold(0u64, |n, s| n.checked_add(s.size as u64))
            .filter(|&n| n <= self.len)
            .ok_or_else(|| outside("a PDB stream larger than the file"))?;
        let mut bytes = Vec::with_capacity(total as usize);
        for s in slices {
            let page = self
                .data
                .read_bytes_at(s.offset, s.size as u64)
                .map_err(|()| outside("a PDB page outside the file"))?;
            bytes.extend_from_slice(page);
        }
        Ok(Box::new(View(bytes)))
    }
}

pub(super) fn pdb<'data, R: ReadRef<'data> + 'data>(
    data: R,
    file_name: &str,
) -> Result<DebugObject, IdentifyError> {
    let bad = |e: pdb::Error| IdentifyError::Malformed(Format::Pdb, e.to_string());
    let mut pdb = pdb::PDB::open(ReadRefSource::new(data)).map_err(bad)?;
    let info = pdb.pdb_information().map_err(bad)?;
    let dbi = pdb.debug_information().ok();
    let age = dbi.as_ref().and_then(|d| d.age()).unwrap_or(info.age);
    let arch = dbi
        .as_ref()
        .and_then(|d| d.machine_type().ok())
        .map(|m| match m {
            pdb::MachineType::Amd64 => "x86_64",
            pdb::MachineType::X86 => "x86",
            pdb::MachineType::Arm64 => "arm64",
            pdb::MachineType::Arm | pdb::MachineType::ArmNT => "arm",
            _ => "unknown",
        });
    let (d1, d2, d3, d4) = info.guid.as_fields();
    let mut guid = [0u8; 16];
    guid[..4].copy_from_slice(&d1.to_le_bytes());
    guid[4..6].copy_from_slice(&d2.to_le_bytes());
    guid[6..8].copy_from_slice(&d3.to_le_bytes());
    guid[8..].copy_from_slice(d4);
    let symsrv_id = format!("{}{age:x}", guid_upper(&guid));
    let debug_id = breakpad_id_from_guid(&guid, age);
    let keys: Vec<_> = key(file_name, &symsrv_id, file_name).into_iter().collect();
    if keys.is_empty() {
        return Err(IdentifyError::NoId(
            Format::Pdb,
            "a file name that cannot be a key",
        ));
    }
    Ok(DebugObject {
        format: Format::Pdb,
        arch: arch.map(str::to_owned),
        debug_file: file_name.to_owned(),
        breakpad_key: breakpad_key(file_name, &debug_id),
        index_id: debug_id.to_ascii_lowercase(),
        debug_id,
        code_file: None,
        code_id: None,
        has_debug_info: true,
        keys,
        range: None,
    })
}

pub(super) fn portable_pdb<'data, R: ReadRef<'data>>(
    data: R,
    file_name: &str,
) -> Result<Identified, IdentifyError> {
    let len = data
        .len()
        .unwrap_or(0)
        .min(crate::ppdb::PREFIX_LIMIT as u64);
    let head = data
        .read_bytes_at(0, len)
        .map_err(|()| IdentifyError::Malformed(Format::PortablePdb, "unreadable".into()))?;
    let guid = portable_pdb_guid(head).ok_or(IdentifyError::NoId(
        Format::PortablePdb,
        "no #Pdb stream in the first MiB",
    ))?;
    let id = format!("{}FFFFFFFF", guid_hex(&guid));
    let keys: Vec<_> = key(file_name, &id, file_name).into_iter().collect();
    if keys.is_empty() {
        return Err(IdentifyError::NoId(
            Format::PortablePdb,
            "a file name that cannot be a key",
        ));
    }
    Ok(Identified {
        objects: vec![DebugObject {
            format: Format::PortablePdb,
            arch: None,
            debug_file: file_name.to_owned(),
            debug_id: breakpad_id_from_guid(&guid, 1),
            index_id: id.to_ascii_lowercase(),
            code_file: None,
            code_id: None,
            // No Breakpad symbols are made from managed code.
            has_debug_info: false,
            keys,
            breakpad_key: None,
            range: None,
        }],
        embedded: Vec::new(),
    })
}
