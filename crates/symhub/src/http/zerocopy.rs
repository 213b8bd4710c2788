//! Zero-copy file bodies on HTTP/1 connections: a committed file's bytes, and a fill's as
//! they land in its temp file, go from the page cache to the socket with `sendfile(2)`, as
//! nginx's `sendfile on` sends them, instead of being copied into a buffer and out of it
//! again.
//!
//! hyper keeps the framing (the head, `Content-Length` accounting, keep-alive), so the file
//! still flows through hyper as a body, made of slices of [`PLACEHOLDER`], a static that is
//! never read. The connection's stream ([`ZeroCopyIo`]) sends, where hyper writes a
//! placeholder slice, the file range the body queued for it ([`Sendfiles`]). That relies on
//! what hyper 1.x's HTTP/1 writer does on a stream with vectored writes (`WriteStrategy::
//! Queue`): body chunks are queued as they are, never copied, and written in order; a
//! partial write advances into a chunk, so a slice's offset in the placeholder says how
//! much of its range is already sent. HTTP/2 frames and interleaves bodies: its requests
//! get the copying body.
//!
//! A placeholder slice out of step with the queue fails the connection: the client gets a
//! cut response, never wrong bytes. Only ranges whose pages are in the page cache are sent
//! this way (`sendfile` would block the worker on the disk); the others are read on the
//! blocking pool as before, which also brings them into the cache.
//!
//! As with nginx's `sendfile on`, the socket holds the page-cache pages, not a copy, until
//! they are sent: a committed file changed in place meanwhile would send the changed bytes
//! (a break-it pass truncated one by hand and got zeroes in a complete response). symhub
//! never changes one: files are written once and replaced by rename, which leaves the
//! pages of an open file alone, and a fill only appends to its temp file, behind the bytes
//! its readers are given.
//!
//! Measured (100 MiB hits, `wrk -t1 -c4`, 2 cores): see `bench/README.md`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::cache::fill::Follower;
use crate::cache::read::{read_chunk, shorter_than_recorded, CHUNK};

/// Bytes one placeholder chunk stands for. It costs no memory: the static is zeroes in
/// `.bss` that nothing reads, so its pages are never touched.
const PLACEHOLDER_LEN: usize = 1 << 20;

/// Distance between two bytes probed for residency in the page cache.
const PROBE_STRIDE: usize = 128 * 1024;

/// What a queued body chunk looks like to hyper. Recognized by address, never read.
static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// Bytes `start..end` of a committed file, attached to a response whose body reads them:
/// a connection that can send them without a copy replaces that body ([`Sendfiles::adopt`]).
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    pub start: u64,
    pub end: u64,
}

/// One connection's queue of file ranges standing behind placeholder chunks, in the order
/// hyper writes them.
#[derive(Clone, Default)]
pub struct Sendfiles {
    queue: Arc<Mutex<VecDeque<Queued>>>,
    /// A body of the connection broke off: it is reset when closed (see [`ZeroCopyIo`]'s
    /// `Drop`).
    broken: Arc<AtomicBool>,
}

struct Queued {
    file: Arc<File>,
    offset: u64,
    len: usize,
    sent: usize,
}

impl Sendfiles {
    /// Gives `r` a zero-copy body when it carries a [`FileRange`] or a fill's [`Follower`].
    pub fn adopt(&self, mut r: Response) -> Response {
        let extensions = r.extensions_mut();
        if let Some(range) = extensions.remove::<FileRange>() {
            *r.body_mut() = self.body(range);
        } else if let Some(follower) = extensions.remove::<Follower>() {
            *r.body_mut() = self.growing_body(follower);
        }
        r
    }

    fn body(&self, range: FileRange) -> Body {
        let queue = self.queue.clone();
        let FileRange { file, start, end } = range;
        let stream = futures_util::stream::try_unfold(start, move |offset| {
            let (file, queue) = (file.clone(), queue.clone());
            async move {
                if offset >= end {
                    return Ok(None);
                }
                let len = (end - offset).min(PLACEHOLDER_LEN as u64) as usize;
                let (chunk, n) = next_chunk(&queue, file, offset, len).await?;
                Ok::<_, io::Error>(Some((chunk, offset + n as u64)))
            }
        });
        self.breakable(stream)
    }

    /// The bytes of a fill as they land in its temp file: each stretch that has arrived
    /// since the last one is sent from the page cache, where the fill's write just put it,
    /// instead of being read back into a buffer and copied to the socket.
    fn growing_body(&self, follower: Follower) -> Body {
        let queue = self.queue.clone();
        let stream = futures_util::stream::try_unfold(follower, move |mut f| {
            let queue = queue.clone();
            async move {
                let Some((file, offset, len)) = f.next(PLACEHOLDER_LEN).await? else {
                    return Ok(None);
                };
                let (chunk, n) = next_chunk(&queue, file, offset, len).await?;
                f.advance(n);
                Ok::<_, io::Error>(Some((chunk, f)))
            }
        });
        self.breakable(stream)
    }

    /// A body that marks the connection broken when it ends in an error.
    fn breakable(
        &self,
        stream: impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) -> Body {
        use futures_util::TryStreamExt;
        let broken = self.broken.clone();
        Body::from_stream(stream.inspect_err(move |_| broken.store(true, Ordering::Relaxed)))
    }
}

/// The body chunk for up to `len` bytes of `file` at `offset`, and how many bytes it stands
/// for: a placeholder for all of them, queued for `sendfile`, when their pages are cached;
/// otherwise at most [`CHUNK`] bytes read on the blocking pool.
async fn next_chunk(
    queue: &Mutex<VecDeque<Queued>>,
    file: Arc<File>,
    offset: u64,
    len: usize,
) -> io::Result<(Bytes, usize)> {
    if !in_page_cache(&file, offset, len) {
        let len = len.min(CHUNK);
        return Ok((read_chunk(file, offset, len).await?, len));
    }
    let queued = Queued {
        file,
        offset,
        len,
        sent: 0,
    };
    lock(queue).push_back(queued);
    Ok((Bytes::from_static(&PLACEHOLDER[..len]), len))
}

fn lock(queue: &Mutex<VecDeque<Queued>>) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
    // Nothing panics while holding it; a poisoned queue is still in order.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `len` bytes at `offset` look cached: one byte every [`PROBE_STRIDE`] and the last one,
/// each read with `RWF_NOWAIT`, which fails rather than wait for the disk.
fn in_page_cache(file: &File, offset: u64, len: usize) -> bool {
    use rustix::io::{preadv2, ReadWriteFlags};
    let mut byte = [0u8; 1];
    let probes = (0..len)
        .step_by(PROBE_STRIDE)
        .chain(std::iter::once(len - 1));
    probes.map(|at| offset + at as u64).all(|at| {
        let mut slices = [io::IoSliceMut::new(&mut byte)];
        matches!(
            preadv2(file, &mut slices, at, ReadWriteFlags::NOWAIT),
            Ok(1)
        )
    })
}

/// Where `buf` starts in [`PLACEHOLDER`], if it is a slice of it.
fn placeholder_offset(buf: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let at = (buf.as_ptr() as usize).checked_sub(base)?;
    (!buf.is_empty() && at + buf.len() <= PLACEHOLDER_LEN).then_some(at)
}

/// A socket `sendfile(2)` can write to, with tokio's readiness.
pub trait Socket: AsyncRead + AsyncWrite + AsFd + Unpin {
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! socket {
    ($t:ty) => {
        impl Socket for $t {
            fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_write_ready(cx)
            }
            fn try_write_with<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, f)
            }
        }
    };
}
socket!(tokio::net::TcpStream);
socket!(tokio::net::UnixStream);

/// A connection's stream that writes placeholder slices as the file ranges behind them.
pub struct ZeroCopyIo<S: AsFd> {
    inner: S,
    sendfiles: Sendfiles,
    /// `symhub_sendfile_bytes_total`.
    sent: Counter,
}

impl<S: Socket> ZeroCopyIo<S> {
    pub fn new(inner: S, sendfiles: Sendfiles, sent: Counter) -> Self {
        Self {
            inner,
            sendfiles,
            sent,
        }
    }

    /// Sends what stands behind `buf`, a placeholder slice `at` bytes into the placeholder.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        at: usize,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut queue = lock(&self.sendfiles.queue);
        let front = match queue.front_mut() {
            Some(q) if q.sent == at && buf.len() <= q.len - q.sent => q,
            _ => {
                return Poll::Ready(Err(io::Error::other(
                    "a zero-copy body chunk came out of order; connection closed",
                )))
            }
        };
        loop {
            ready!(self.inner.poll_writable(cx))?;
            let mut offset = front.offset + front.sent as u64;
            let socket = self.inner.as_fd();
            let sent = self.inner.try_write_with(|| {
                Ok(rustix::fs::sendfile(
                    socket,
                    &*front.file,
                    Some(&mut offset),
                    buf.len(),
                )?)
            });
            match sent {
                Ok(0) => return Poll::Ready(Err(shorter_than_recorded())),
                Ok(n) => {
                    front.sent += n;
                    if front.sent == front.len {
                        queue.pop_front();
                    }
                    self.sent.inc_by(n as u64);
                    return Poll::Ready(Ok(n));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: AsFd> Drop for ZeroCopyIo<S> {
    /// A response that broke off is cut by a reset, not a clean close: an HTTP/1.0 body, or
    /// one without a length (an upstream's chunked or encoded body), is delimited by the
    /// close, so a FIN would pass a short body for a whole one (curl `--http1.0` exited 0).
    fn drop(&mut self) {
        if self.sendfiles.broken.load(Ordering::Relaxed) {
            let linger = Some(std::time::Duration::ZERO);
            if let Err(e) = rustix::net::sockopt::set_socket_linger(self.inner.as_fd(), linger) {
                tracing::debug!("cannot reset a connection whose response broke off: {e}");
            }
        }
    }
}

impl<S: Socket> AsyncRead for ZeroCopyIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Socket> AsyncWrite for ZeroCopyIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match placeholder_offset(buf) {
            Some(at) => self.poll_sendfile(cx, at, buf),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    /// Writes the slices before the first placeholder slice, or sends that one.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|b| placeholder_offset(b).is_some()) {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some(0) => {
                let at = placeholder_offset(&bufs[0]).expect("found above");
                self.poll_sendfile(cx, at, &bufs[0])
            }
            Some(i) => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..i]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn file_of(bytes: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        Arc::new(f)
    }

    /// A [`ZeroCopyIo`] on one end of a socket pair, the other end, its queue and counter.
    fn rig() -> (
        ZeroCopyIo<tokio::net::UnixStream>,
        tokio::net::UnixStream,
        Sendfiles,
        Counter,
    ) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (s, sent) = (Sendfiles::default(), Counter::default());
        (ZeroCopyIo::new(a, s.clone(), sent.clone()), b, s, sent)
    }

    fn queue(s: &Sendfiles, file: &Arc<File>, offset: u64, len: usize) -> &'static [u8] {
        lock(&s.queue).push_back(Queued {
            file: file.clone(),
            offset,
            len,
            sent: 0,
        });
        &PLACEHOLDER[..len]
    }

    /// Writes `parts` as hyper does: vectored, advancing through a partly written slice.
    async fn write_like_hyper<W: AsyncWrite + Unpin>(w: &mut W, mut parts: Vec<&[u8]>) {
        while !parts.is_empty() {
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let mut n = w.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            while n > 0 {
                let take = n.min(parts[0].len());
                parts[0] = &parts[0][take..];
                n -= take;
                if parts[0].is_empty() {
                    parts.remove(0);
                }
            }
        }
        w.flush().await.unwrap();
    }

    #[tokio::test]
    async fn placeholder_slices_go_out_as_their_file_ranges_through_partial_writes() {
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let file = file_of(&content);
        let (mut io, mut b, s, sent) = rig();
        // Larger than a socket buffer: sendfile writes part of a range at a time.
        let first = queue(&s, &file, 5, PLACEHOLDER_LEN);
        let second = queue(&s, &file, 2_000_000, 700_000);
        let parts = vec![&b"head\r\n"[..], first, &b"|"[..], second, &b"tail"[..]];
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        write_like_hyper(&mut io, parts).await;
        drop(io);
        let mut want = b"head\r\n".to_vec();
        want.extend_from_slice(&content[5..5 + PLACEHOLDER_LEN]);
        want.push(b'|');
        want.extend_from_slice(&content[2_000_000..2_700_000]);
        want.extend_from_slice(b"tail");
        assert!(reader.await.unwrap() == want);
        assert_eq!(sent.get(), (PLACEHOLDER_LEN + 700_000) as u64);
        assert!(lock(&s.queue).is_empty());
    }

    #[tokio::test]
    async fn a_placeholder_slice_out_of_step_fails_the_write() {
        let file = file_of(&[1; 1000]);
        let (mut io, _b, s, _) = rig();
        // Nothing queued.
        let e = io.write(&PLACEHOLDER[..10]).await.unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
        // Queued, but the slice starts past what was sent of it.
        queue(&s, &file, 0, 100);
        assert!(io.write(&PLACEHOLDER[10..100]).await.is_err());
        // Longer than what is queued.
        assert!(io.write(&PLACEHOLDER[..200]).await.is_err());
        // In step: sent.
        assert_eq!(io.write(&PLACEHOLDER[..100]).await.unwrap(), 100);
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_range_fails_the_write() {
        let file = file_of(&[7; 100]);
        let (mut io, _b, s, _) = rig();
        let p = queue(&s, &file, 50, 80);
        assert_eq!(io.write(p).await.unwrap(), 50);
        let e = io.write(&p[50..]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
