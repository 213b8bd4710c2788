//! Unpacking SymSrv's compressed files (`foo.pd_`): a CAB archive holding exactly one file.
//!
//! Runs on a blocking thread. The member's size comes from the CAB directory, so the client
//! gets a Content-Length before the first byte; it is checked against `cache.max_unpacked_size`
//! first, and the bytes actually produced must match it exactly (a lying header is an error,
//! not a short or long file).
//!
//! The CAB may still be arriving: [`CabReader`] reads the temp file of its download and waits
//! for the bytes it needs, so the plain file streams out while the CAB streams in. The `cab`
//! crate reads the directory at the front and then its data blocks in order, so the wait is
//! only ever for the next block.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::sync::{mpsc::Sender, watch};

use super::fill::FillState;
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

pub(super) fn extract(
    reader: CabReader,
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

/// Reads a CAB that is committed, or still being downloaded by a fill. For use on a
/// blocking thread only: a read past what has arrived waits for the fill to write more.
pub(super) struct CabReader {
    file: Arc<File>,
    pos: u64,
    /// The fill writing the file, or `None` when it is complete.
    arriving: Option<(watch::Receiver<FillState>, tokio::runtime::Handle)>,
}

impl CabReader {
    pub(super) fn committed(file: Arc<File>) -> Self {
        Self {
            file,
            pos: 0,
            arriving: None,
        }
    }

    /// Must be called on the runtime (it keeps a handle to wait on the fill from the
    /// blocking thread).
    pub(super) fn arriving(file: Arc<File>, fill: watch::Receiver<FillState>) -> Self {
        Self {
            file,
            pos: 0,
            arriving: Some((fill, tokio::runtime::Handle::current())),
        }
    }

    /// Waits until the byte at `pos` has arrived or the download has ended; returns how
    /// many bytes can be read now (0: the file ends before `pos`).
    fn available(&mut self, pos: u64) -> io::Result<u64> {
        let Some((rx, handle)) = &mut self.arriving else {
            return Ok(self.file.metadata()?.len().saturating_sub(pos));
        };
        loop {
            let (written, done) = match &*rx.borrow_and_update() {
                FillState::Streaming(p) => (p.written, p.done.clone()),
                _ => return Err(io::Error::other("the CAB download ended without its bytes")),
            };
            if pos < written {
                return Ok(written - pos);
            }
            match done {
                Some(Ok(_)) => return Ok(0),
                Some(Err(())) => return Err(io::Error::other("the CAB download broke off")),
                None => {
                    if handle.block_on(rx.changed()).is_err() {
                        return Err(io::Error::other("the CAB download ended without its bytes"));
                    }
                }
            }
        }
    }

    /// The CAB's whole length (waits for the end of its download).
    fn len(&mut self) -> io::Result<u64> {
        let mut at = self.pos;
        loop {
            match self.available(at)? {
                0 => return Ok(at),
                n => at += n,
            }
        }
    }
}

impl Read for CabReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.available(self.pos)?).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for CabReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len()?.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| invalid("seek before the start of the CAB".into()))?;
        Ok(self.pos)
    }
}
