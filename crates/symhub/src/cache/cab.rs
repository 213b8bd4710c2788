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

/// Unpacks the single member of a CAB archive: checks there is exactly one, that its size is
/// within `max`, calls `started` with that size, then `write` for each chunk, and checks that
/// the member produced exactly the size its header declared. Pure I/O on the given reader,
/// so it can be fuzzed.
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
    if first_member_offset(&mut reader)? != 0 {
        return Err(invalid(
            "the CAB member does not start at the beginning of its folder".into(),
        ));
    }
    let mut cabinet = cab::Cabinet::new(reader)?;
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
    let mut reader = cabinet.read_file(name)?.take(len + 1);
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > *len {
            return Err(invalid(
                "the CAB member is longer than its header says".into(),
            ));
        }
        write(&buf[..n])?;
    }
    if written != *len {
        return Err(invalid(format!(
            "the CAB member ended after {written} of {len} bytes"
        )));
    }
    Ok(written)
}

/// `uoffFolderStart` of the first CFFILE entry, read from the raw header (MS-CAB 2.1, 2.3).
fn first_member_offset<R: Read + Seek>(reader: &mut R) -> io::Result<u32> {
    let mut header = [0u8; 36];
    reader.read_exact(&mut header)?;
    if &header[0..4] != b"MSCF" {
        return Err(invalid("not a CAB file".into()));
    }
    let files_at = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    reader.seek(io::SeekFrom::Start(u64::from(files_at) + 4))?;
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
