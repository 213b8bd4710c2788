//! Unpacking SymSrv's compressed files (`foo.pd_`): a CAB archive holding exactly one file.
//!
//! Runs on a blocking thread. The member's size comes from the CAB directory, so the client
//! gets a Content-Length before the first byte; it is checked against `cache.max_unpacked_size`
//! first, and the bytes actually produced must match it exactly (a lying header is an error,
//! not a short or long file).

use std::io::{self, Read, Seek};
use std::path::Path;

use tokio::sync::mpsc::Sender;

use super::fill::{Sink, CHUNK};

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

pub(super) fn extract(
    cab_path: &Path,
    mut sink: Sink,
    max: u64,
    events: Sender<Event>,
) -> io::Result<Sink> {
    let file = std::fs::File::open(cab_path)?;
    unpack_single(
        file,
        max,
        |len| {
            let _ = events.blocking_send(Event::Started { len });
        },
        |chunk| {
            sink.write_blocking(chunk)?;
            let _ = events.blocking_send(Event::Written(sink.written()));
            Ok(())
        },
    )?;
    Ok(sink)
}
