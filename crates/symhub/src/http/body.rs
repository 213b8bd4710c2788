//! Response bodies of committed files, read chunk by chunk through positional reads on a
//! shared descriptor. (A fill in progress is read through [`crate::cache::Fill::stream`].)
//!
//! Memory per response is one chunk whatever the file size: the next chunk is read only when
//! hyper asks for it, so a slow client slows its own reads and nothing piles up in RAM.

use std::fs::File;
use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;

use super::zerocopy::FileRange;
use crate::cache::read::{read_chunk, read_exact_at, shorter_than_recorded, CHUNK};

/// Largest range read without leaving the async thread.
const INLINE_READ: u64 = 64 * 1024;

/// Bytes `start..end` of a committed file. A range of at most [`INLINE_READ`] bytes is read
/// right here on the async thread, as nginx reads from its event loop: for a page-cached
/// file that is a few microseconds, far less than a hand-off to the blocking pool, and it is
/// what makes small hits cheap. Larger ranges stream chunk by chunk ([`read_chunk`]).
///
/// An error, before any byte is sent, when the file is shorter than `end`: a cached file
/// truncated behind symhub's back is then forgotten and fetched again by the caller, instead
/// of being served cut to every client (a streamed body can only be cut once it started).
pub fn file_body(file: Arc<File>, start: u64, end: u64) -> io::Result<Body> {
    if end - start <= INLINE_READ {
        return Ok(Body::from(read_exact_at(
            &file,
            start,
            (end - start) as usize,
        )?));
    }
    if file.metadata()?.len() < end {
        return Err(shorter_than_recorded());
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

/// A response whose body is [`file_body`]; a range streamed in chunks also carries its
/// [`FileRange`], for a connection that can send it without copying it
/// ([`super::zerocopy`]).
pub fn file_response(file: Arc<File>, start: u64, end: u64) -> io::Result<Response> {
    let range = (end - start > INLINE_READ).then(|| FileRange {
        file: file.clone(),
        start,
        end,
    });
    let mut r = Response::new(file_body(file, start, end)?);
    if let Some(range) = range {
        r.extensions_mut().insert(range);
    }
    Ok(r)
}
