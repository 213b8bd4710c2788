//! Response bodies read from files, chunk by chunk, through positional reads on a shared
//! descriptor: a committed object, or the temp file of a fill still being written.
//!
//! Memory per response is one chunk whatever the file size: the next chunk is read only when
//! hyper asks for it, so a slow client slows its own reads and nothing piles up in RAM.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::watch;

use crate::cache::fill::{FillState, CHUNK};

/// Largest range read without leaving the async thread.
const INLINE_READ: u64 = 64 * 1024;

fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
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

async fn read_chunk(file: Arc<File>, offset: u64, len: usize) -> io::Result<Bytes> {
    tokio::task::spawn_blocking(move || read_exact_at(&file, offset, len)).await?
}

/// Bytes `start..end` of a committed file. A range of at most [`INLINE_READ`] bytes is read
/// right here on the async thread, as nginx reads from its event loop: for a page-cached
/// file that is a few microseconds, far less than a hand-off to the blocking pool, and it is
/// what makes small hits cheap. Larger ranges stream chunk by chunk from the blocking pool.
pub fn file_body(file: Arc<File>, start: u64, end: u64) -> io::Result<Body> {
    if end - start <= INLINE_READ {
        return Ok(Body::from(read_exact_at(
            &file,
            start,
            (end - start) as usize,
        )?));
    }
    let stream = futures_util::stream::try_unfold(start, move |offset| {
        let file = file.clone();
        async move {
            if offset >= end {
                return Ok(None);
            }
            let n = (end - offset).min(CHUNK as u64) as usize;
            let chunk = read_chunk(file, offset, n).await?;
            Ok::<_, io::Error>(Some((chunk, offset + n as u64)))
        }
    });
    Ok(Body::from_stream(stream))
}

/// Bytes `start..end` (or to the end) of a fill in progress, following it as it grows. If the
/// download breaks off, the stream ends in an error, so the client sees a cut response, never
/// a short one that looks complete. With `checked`, the last byte of a range is held until the
/// fill has ended well (its hash matched), as a fill from the bucket holds its last byte.
pub fn fill_body(
    rx: watch::Receiver<FillState>,
    start: u64,
    end: Option<u64>,
    checked: bool,
) -> Body {
    let stream =
        futures_util::stream::try_unfold((rx, start), move |(mut rx, offset)| async move {
            loop {
                let (file, written, done) = match &*rx.borrow_and_update() {
                    FillState::Streaming(p) => (p.file.clone(), p.written, p.done.clone()),
                    _ => return Err(io::Error::other("fill state lost")),
                };
                if checked && matches!(done, Some(Err(()))) {
                    return Err(io::Error::other("stored file failed its check"));
                }
                // With `checked`, the range's last byte waits until the fill has ended well.
                let hold = checked && done.is_none();
                let stop = match end {
                    Some(e) if hold => e.saturating_sub(1),
                    Some(e) => e,
                    None => u64::MAX,
                };
                let limit = stop.min(written);
                if offset < limit {
                    let n = (limit - offset).min(CHUNK as u64) as usize;
                    let chunk = read_chunk(file, offset, n).await?;
                    return Ok(Some((chunk, (rx, offset + n as u64))));
                }
                if end.is_some_and(|e| offset >= e) {
                    return Ok(None);
                }
                match done {
                    Some(Ok(_)) => return Ok(None),
                    Some(Err(())) => return Err(io::Error::other("upstream download failed")),
                    None => {
                        if rx.changed().await.is_err() {
                            return Err(io::Error::other("fill ended without completing"));
                        }
                    }
                }
            }
        });
    Body::from_stream(stream)
}
