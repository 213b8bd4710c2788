//! Closing connections that sit idle or send a request head too slowly. A client that
//! connects and sends nothing, keeps a connection open between requests forever, or trickles
//! a head a byte at a time (slowloris) would hold a connection slot and a file descriptor;
//! a flood of them would fill `server.max_connections`.
//!
//! Every connection's stream is wrapped to record when bytes last moved and when a request
//! head began to arrive, and its requests are counted while they run (their response bodies
//! included). A watchdog closes the connection when nothing is running and
//! - a head has been arriving for `header_read_timeout`, or
//! - nothing has moved for `header_read_timeout` (before its first request) or
//!   `idle_timeout` (between requests).
//!
//! A long download is never cut: it is a request in flight. hyper's own header timer is off
//! (`http::serve_conn`): it also ran while a keep-alive connection waited for its next
//! request, so such connections were closed after `header_read_timeout` (30 s), not
//! `idle_timeout` (60 s), as the break-it pass found.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` when bytes were last seen moving: stamped by the watchdog
    /// ([`Activity::expired`]) when it finds `moved` set, so it may be late by one of its
    /// ticks (at most a quarter of the timeout) and a connection closes that much late,
    /// never early.
    last: AtomicU64,
    /// Bytes moved since the watchdog last looked. Reads and writes only set this: reading
    /// the clock on each of them was ~2 % of a remembered 404's instructions (callgrind).
    moved: AtomicBool,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since `start` + 1 when the first byte of a request head arrived with no
    /// request running; 0 when none is arriving.
    head_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            moved: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    /// Bytes came in: with no request running, they are a request head arriving, timed
    /// from its first byte.
    fn received(&self) {
        self.touch();
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            let now = self.start.elapsed().as_millis() as u64;
            let _ =
                self.head_since
                    .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Marks a request as running until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when the connection has been idle too long, or its request head has been
    /// arriving for `head` (`header_read_timeout`).
    pub async fn expired(&self, head: Duration, between: Duration) {
        loop {
            let limit = if self.requests.load(Ordering::Relaxed) == 0 {
                head
            } else {
                between
            };
            let elapsed = self.start.elapsed();
            if self.moved.swap(false, Ordering::Relaxed) {
                self.last
                    .store(elapsed.as_millis() as u64, Ordering::Relaxed);
            }
            let idle_for =
                elapsed.saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
            let head_for = match self.head_since.load(Ordering::Relaxed) {
                0 => Duration::ZERO,
                since => elapsed.saturating_sub(Duration::from_millis(since - 1)),
            };
            // A head arriving is timed from its first byte only: a pause inside it longer
            // than `idle_timeout` is not idleness (break-it pass).
            let over = match head_for {
                Duration::ZERO => idle_for >= limit,
                arriving => arriving >= head,
            };
            if self.in_flight.load(Ordering::Relaxed) == 0 && over {
                return;
            }
            let until = match head_for {
                Duration::ZERO => limit.saturating_sub(idle_for),
                arriving => head.saturating_sub(arriving),
            };
            let next = until.min(limit / 4);
            tokio::time::sleep(next.max(Duration::from_millis(100))).await;
        }
    }
}

/// Held by a request (and its response body) while it runs.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes move through it.
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
