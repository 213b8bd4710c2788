//! Unpacking SymSrv's compressed files (`foo.pd_`): a CAB archive holding exactly one file.
//!
//! Runs on a blocking thread. The member's size comes from the CAB directory, so the client
//! gets a Content-Length before the first byte; it is checked against `cache.max_unpacked_size`
//! first, and the bytes actually produced must match it exactly (a lying header is an error,
//! not a short or long file).
//!
//! The CAB may still be arriving: the reader given to [`extract`] may be a fill's
//! (`fill::FillReader`), which waits for the bytes it needs, so the plain file streams out
//! while the CAB streams in. The `cab` crate reads the directory at the front and then its
//! data blocks in order, so the wait is only ever for the next block.

use std::io::{self, Read, Seek};

use tokio::sync::mpsc::Sender;

use super::read::CHUNK;
use crate::store::TempObject;

pub(super) enum Event {
    Started { len: u64 },
    Written(u64),
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Unpacks the single member of a CAB archive: checks there is exactly one, in the one
/// folder of a cabinet that is not part of a set, that its size is within `max`, calls
/// `started` with that size, then `write` for each chunk, and checks that the member
/// produced exactly the size its header declared and that the folder's data blocks hold
/// exactly that much. The last chunk is written only once all of that holds, so a reader
/// of what `write` wrote never sees a whole body of a lying CAB. Pure I/O on the given
/// reader, so it can be fuzzed.
pub fn unpack_single<R: Read + Seek>(
    reader: R,
    max: u64,
    started: impl FnOnce(u64),
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut reader = reader;
    // The cab crate indexes its block list without bounds checks when a member claims to
    // start past the data (found by fuzzing): a SymSrv CAB's one member starts at offset 0
    // of its folder, so anything else is refused before the crate sees it.
    let header = read_header(&mut reader)?;
    if first_member_offset(&mut reader, &header)? != 0 {
        return Err(invalid(
            "the CAB member does not start at the beginning of its folder".into(),
        ));
    }
    // What a SymSrv CAB (makecab of one file) is: one folder, not part of a cabinet set. A
    // member's size is checked against its folder's data below, which either would defeat.
    let Header { folders, flags, .. } = header;
    if folders != 1 || flags & 0x0003 != 0 {
        return Err(invalid(format!(
            "not a single-file CAB: {folders} folders{}",
            if flags & 0x0003 != 0 {
                ", part of a cabinet set"
            } else {
                ""
            }
        )));
    }
    let mut cabinet = cab::Cabinet::new(&mut reader)?;
    let members: Vec<(String, u64)> = cabinet
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .map(|e| (e.name().to_owned(), u64::from(e.uncompressed_size())))
        .collect();
    let [(name, len)] = &members[..] else {
        return Err(invalid(format!(
            "expected one file in the CAB, found {}",
            members.len()
        )));
    };
    if *len == 0 {
        return Err(invalid(
            "the file inside is empty; an empty file is never a symbol file".into(),
        ));
    }
    if *len > max {
        return Err(invalid(format!(
            "the file inside is {len} bytes, over cache.max_unpacked_size ({max})"
        )));
    }
    started(*len);
    let mut member = cabinet.read_file(name)?.take(len + 1);
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0u64;
    // The chunk that completes the member, held until the checks below pass.
    let mut last = Vec::new();
    loop {
        let n = member.read(&mut buf)?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > *len {
            return Err(invalid(
                "the CAB member is longer than its header says".into(),
            ));
        }
        if written == *len {
            last = buf[..n].to_vec();
        } else {
            write(&buf[..n])?;
        }
    }
    if written != *len {
        return Err(invalid(format!(
            "the CAB member ended after {written} of {len} bytes"
        )));
    }
    drop(member);
    drop(cabinet);
    // The member reader stops at the size its header declares: data blocks that hold more
    // mean a header that lies short, and a short file would be cached (break-it pass).
    let data = folder_data_size(&mut reader, &header)?;
    if data != written {
        return Err(invalid(format!(
            "the CAB's data holds {data} bytes, its header says {written}"
        )));
    }
    write(&last)?;
    Ok(written)
}

/// What unpacking needs of the CAB header (CFHEADER, MS-CAB 2.1), read once.
struct Header {
    /// `coffFiles`: where the CFFILE entries start.
    files_at: u64,
    /// `cFolders`.
    folders: u16,
    flags: u16,
    /// Where the CFFOLDER entries start, after the optional reserve fields (for a cabinet
    /// that is not part of a set, whose header holds no neighbours' names).
    folders_at: u64,
    /// `cbCFData`: the reserve in each CFDATA block header.
    data_reserve: u64,
}

fn read_header<R: Read + Seek>(reader: &mut R) -> io::Result<Header> {
    let mut header = [0u8; 40];
    reader.seek(io::SeekFrom::Start(0))?;
    reader.read_exact(&mut header[..36])?;
    if &header[0..4] != b"MSCF" {
        return Err(invalid("not a CAB file".into()));
    }
    let flags = u16::from_le_bytes([header[30], header[31]]);
    let (mut folders_at, mut data_reserve) = (36u64, 0u64);
    if flags & 0x0004 != 0 {
        reader.read_exact(&mut header[36..40])?;
        let header_reserve = u16::from_le_bytes([header[36], header[37]]);
        folders_at = 40 + u64::from(header_reserve);
        data_reserve = u64::from(header[39]);
    }
    Ok(Header {
        files_at: u64::from(u32::from_le_bytes(
            header[16..20].try_into().expect("4 bytes"),
        )),
        folders: u16::from_le_bytes([header[26], header[27]]),
        flags,
        folders_at,
        data_reserve,
    })
}

/// The uncompressed size of the (one) folder's data: the sum of its CFDATA blocks'
/// `cbUncomp` (MS-CAB 2.2, 2.4), read from the block headers only.
fn folder_data_size<R: Read + Seek>(reader: &mut R, header: &Header) -> io::Result<u64> {
    reader.seek(io::SeekFrom::Start(header.folders_at))?;
    let mut folder = [0u8; 8];
    reader.read_exact(&mut folder)?;
    let mut at = u64::from(u32::from_le_bytes(
        folder[0..4].try_into().expect("4 bytes"),
    ));
    let blocks = u16::from_le_bytes([folder[4], folder[5]]);
    let mut total = 0u64;
    for _ in 0..blocks {
        reader.seek(io::SeekFrom::Start(at))?;
        let mut block = [0u8; 8];
        reader.read_exact(&mut block)?;
        let compressed = u64::from(u16::from_le_bytes([block[4], block[5]]));
        total += u64::from(u16::from_le_bytes([block[6], block[7]]));
        at += 8 + header.data_reserve + compressed;
    }
    Ok(total)
}

/// `uoffFolderStart` of the first CFFILE entry (MS-CAB 2.3). Leaves the reader at the start.
fn first_member_offset<R: Read + Seek>(reader: &mut R, header: &Header) -> io::Result<u32> {
    reader.seek(io::SeekFrom::Start(header.files_at + 4))?;
    let mut offset = [0u8; 4];
    reader.read_exact(&mut offset)?;
    reader.seek(io::SeekFrom::Start(0))?;
    Ok(u32::from_le_bytes(offset))
}

pub(super) fn extract<R: Read + Seek>(
    reader: R,
    mut sink: TempObject,
    max: u64,
    events: Sender<Event>,
) -> io::Result<TempObject> {
    unpack_single(
        reader,
        max,
        |len| {
            let _ = events.blocking_send(Event::Started { len });
        },
        |chunk| {
            sink.write(chunk)?;
            let _ = events.blocking_send(Event::Written(sink.written()));
            Ok(())
        },
    )?;
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cab_of(content: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut builder = cab::CabinetBuilder::new();
        builder
            .add_folder(cab::CompressionType::MsZip)
            .add_file("foo.pdb");
        let mut writer = builder.build(io::Cursor::new(Vec::new())).unwrap();
        while let Some(mut w) = writer.next_file().unwrap() {
            w.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    /// The result, and the bytes written (whatever the result).
    fn unpack(cab: Vec<u8>) -> (io::Result<u64>, Vec<u8>) {
        let mut out = Vec::new();
        let result = unpack_single(
            io::Cursor::new(cab),
            u64::MAX,
            |_| {},
            |c| {
                out.extend_from_slice(c);
                Ok(())
            },
        );
        (result, out)
    }

    #[test]
    fn the_member_must_be_all_the_data_its_header_says() {
        let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cab = cab_of(&content);
        let (result, out) = unpack(cab.clone());
        assert_eq!(result.unwrap(), content.len() as u64);
        assert!(out == content);
        // The member's `cbFile`: the first CFFILE entry's first field.
        let files_at = u32::from_le_bytes(cab[16..20].try_into().unwrap()) as usize;
        for size in [199_000u32, 201_000] {
            let mut lying = cab.clone();
            lying[files_at..files_at + 4].copy_from_slice(&size.to_le_bytes());
            let (result, out) = unpack(lying);
            let e = result.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{size}: {e}");
            // Never all the bytes it announced: a reader would take a short file for whole.
            assert!(
                (out.len() as u64) < u64::from(size),
                "{size}: {}",
                out.len()
            );
        }
        // Part of a cabinet set, or more than one folder: what a SymSrv CAB never is.
        for (at, value) in [(30, 0x0002u16), (30, 0x0001), (26, 2)] {
            let mut odd = cab.clone();
            odd[at..at + 2].copy_from_slice(&value.to_le_bytes());
            let (result, out) = unpack(odd);
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
            assert!(out.is_empty());
        }
    }
}
