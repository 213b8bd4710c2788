//! Positional reads of cached and stored files, shared by responses and in-process readers.
//!
//! Every reader of a file has its own offset on a shared descriptor (`pread`), so any number
//! of responses read one file, committed or still being written, without a seek or a lock.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Upper bound on the bytes one read (and one write of a fill) moves at once.
pub const CHUNK: usize = 256 * 1024;

/// Reads exactly `len` bytes at `offset`. A file shorter than that is an error that says so.
pub fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                io::Error::new(e.kind(), "file shorter than its recorded size")
            }
            _ => e,
        })?;
    Ok(Bytes::from(buf))
}

/// [`read_exact_at`] on the blocking pool.
pub async fn read_chunk(file: Arc<File>, offset: u64, len: usize) -> io::Result<Bytes> {
    tokio::task::spawn_blocking(move || read_exact_at(&file, offset, len)).await?
}
