//! One upstream download shared by every request for its key ("single flight with a tee").
//!
//! The fill runs in its own task, so a client that disconnects never aborts it. Its progress
//! is published on a `watch` channel: the response headers as soon as they are known, then
//! the number of bytes durably handed to the temp file. Every request, the first or the
//! fiftieth, reads the temp file through its own offset (`pread` on a shared descriptor) up to
//! that count, so a slow client costs a file offset, not a queue of buffered bytes, and every
//! waiter streams from byte 0 while the download is still running.
//!
//! This module owns how a fill streams: its state and its readers ([`Fill::stream`], with the
//! hash gate of bucket copies; [`FillReader`] for blocking consumers). The work of filling
//! it is `cache::fetch`'s.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use symhub_core::SymbolKey;
use tokio::sync::watch;

use super::Entry;

use super::read::CHUNK;

#[derive(Clone)]
pub enum FillState {
    /// Upstreams are being asked.
    Resolving,
    /// Bytes are arriving (or have all arrived) in the temp file.
    Streaming(Progress),
    /// The key turned out to be committed already (a fill that just finished).
    Ready(Arc<Entry>),
    /// No upstream has it.
    NotFound,
    /// Every upstream that might have it failed before sending a body.
    Failed,
    /// A stored key whose bucket could not be read.
    Unavailable,
    /// A stored key whose blob was no longer in the bucket: the key was replaced or
    /// deleted (on another instance) between the read of its row and of its bytes. Its
    /// requests look it up again ([`super::Cache::resolve_with`]).
    Vanished,
}

#[derive(Clone)]
pub struct Progress {
    pub file: Arc<File>,
    /// The length the upstream announced, or the unpacked size of a CAB member.
    pub len: Option<u64>,
    pub written: u64,
    pub upstream: Arc<str>,
    pub last_modified: SystemTime,
    /// `Some(Ok)` once committed, `Some(Err)` once the download broke off.
    pub done: Option<Result<Arc<Entry>, ()>>,
}

pub struct Fill {
    pub key: SymbolKey,
    /// Where the fill is registered: the key and the digest of what upstreams are sent
    /// (see [`Cache::lookup`]), or the bare key for a copy from the bucket.
    pub(super) slot: String,
    /// What debuginfod upstreams are asked, when the key cannot spell it (a source path).
    pub(super) target: Option<Arc<str>>,
    /// Bytes of a stored key, from the bucket (not an upstream).
    pub from_store: bool,
    /// The validator of a stored file, known before its bytes (its SHA-256, as its entry
    /// will give it): a conditional request is answered while the file still arrives.
    etag: Option<http::HeaderValue>,
    /// [`crate::upstream::Upstreams::wire_digest`] of what upstreams are sent (0 for a
    /// copy from the bucket): a miss is remembered for it.
    pub(super) digest: u64,
    /// The cache's generation when the fill began ([`Cache::generation`]).
    pub(super) born: u64,
    pub(super) state: watch::Sender<FillState>,
    /// Which upstreams failed and how (`microsoft: unreachable`), when none answered usably.
    pub(super) failures: std::sync::OnceLock<Arc<str>>,
}

impl Fill {
    /// A fill of `key` registered at `slot`; say where from with [`Fill::upstream`] or
    /// [`Fill::bucket_copy`].
    pub fn new(key: SymbolKey, slot: String, born: u64) -> Self {
        Self {
            key,
            slot,
            target: None,
            from_store: false,
            etag: None,
            digest: 0,
            born,
            state: watch::Sender::new(FillState::Resolving),
            failures: std::sync::OnceLock::new(),
        }
    }

    /// Bytes from upstreams, sent as `digest`; debuginfod upstreams are asked for `target`
    /// instead of the key's translation, when there is one.
    pub(super) fn upstream(mut self, target: Option<Arc<str>>, digest: u64) -> Self {
        self.target = target;
        self.digest = digest;
        self
    }

    /// Bytes of a stored key, copied from the bucket; `sha256`: the store's record of them.
    pub(super) fn bucket_copy(mut self, sha256: &str) -> Self {
        self.from_store = true;
        self.etag = Some(super::etag_of(sha256));
        self
    }

    /// The `ETag` the file will have, when it is known before the file is whole (a stored
    /// file's); `None` for an upstream's download, whose hash is known only at its end.
    pub fn etag(&self) -> Option<&http::HeaderValue> {
        self.etag.as_ref()
    }

    pub fn subscribe(&self) -> watch::Receiver<FillState> {
        self.state.subscribe()
    }

    /// Waits until the fill knows what it is serving: headers, a miss, or a failure.
    pub async fn headers(&self) -> FillState {
        let mut rx = self.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, FillState::Resolving))
            .await
            .map(|s| s.clone());
        state.unwrap_or(FillState::Failed)
    }

    /// Bytes `start..end` (or to the end) of the fill, following it as it grows, read in
    /// chunks of at most [`CHUNK`]. How it ends is [`Follower::next`]'s.
    pub fn stream(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
        futures_util::stream::try_unfold(self.follow(start, end), |mut f| async move {
            let Some((file, at, n)) = f.next(CHUNK).await? else {
                return Ok(None);
            };
            let chunk = super::read::read_chunk(file, at, n).await?;
            f.advance(n);
            Ok(Some((chunk, f)))
        })
    }

    /// A reader's place in bytes `start..end` (or to the end) of the fill, for bodies that
    /// read the temp file their own way (`http::zerocopy` sends it with `sendfile`).
    pub fn follow(&self, start: u64, end: Option<u64>) -> Follower {
        Follower {
            rx: self.subscribe(),
            offset: start,
            end,
            checked: self.from_store,
        }
    }

    /// Waits until the fill has ended and returns the committed entry, if any.
    pub async fn finished(&self) -> Result<Option<Arc<Entry>>, ()> {
        let mut rx = self.subscribe();
        let state = rx
            .wait_for(|s| match s {
                FillState::Resolving => false,
                FillState::Streaming(p) => p.done.is_some(),
                _ => true,
            })
            .await
            .map(|s| s.clone())
            .unwrap_or(FillState::Failed);
        match state {
            FillState::Ready(e) => Ok(Some(e)),
            FillState::Streaming(p) => p.done.unwrap().map(Some),
            FillState::NotFound => Ok(None),
            _ => Err(()),
        }
    }
}

/// Where one reader is in a fill: the next byte it wants and where it stops.
#[derive(Clone)]
pub struct Follower {
    rx: watch::Receiver<FillState>,
    offset: u64,
    end: Option<u64>,
    /// A copy of a stored file from the bucket, checked against the store's SHA-256 once
    /// whole: its last byte is held until then.
    checked: bool,
}

impl Follower {
    /// The next bytes the reader may have: `(file, offset, len)`, at most `max` bytes of the
    /// temp file from the reader's place, waiting for them to land. `None` at the end. If
    /// the download breaks off, an error, so a reader sees a cut body, never a short one
    /// that looks complete; for a bucket copy the range's last byte is held until the fill
    /// has ended well, so no reader ever gets a whole body of wrong bytes. Does not move the
    /// reader: [`Follower::advance`] says how much it took.
    pub async fn next(&mut self, max: usize) -> io::Result<Option<(Arc<File>, u64, usize)>> {
        loop {
            let (file, len, written, done) = match &*self.rx.borrow_and_update() {
                FillState::Streaming(p) => (p.file.clone(), p.len, p.written, p.done.clone()),
                _ => return Err(io::Error::other("fill state lost")),
            };
            if self.checked && matches!(done, Some(Err(()))) {
                return Err(io::Error::other("stored file failed its check"));
            }
            // A bucket copy always knows its length (the store's record).
            let hold = self.checked && done.is_none();
            let stop = match self.end.or(len) {
                Some(e) if hold => e.saturating_sub(1),
                Some(e) => e,
                None => u64::MAX,
            };
            let limit = stop.min(written);
            if self.offset < limit {
                let n = (limit - self.offset).min(max as u64) as usize;
                return Ok(Some((file, self.offset, n)));
            }
            if self.end.is_some_and(|e| self.offset >= e) {
                return Ok(None);
            }
            match done {
                Some(Ok(_)) => return Ok(None),
                Some(Err(())) => return Err(io::Error::other("upstream download failed")),
                None => {
                    if self.rx.changed().await.is_err() {
                        return Err(io::Error::other("fill ended without completing"));
                    }
                }
            }
        }
    }

    /// Moves the reader `n` bytes on, past bytes [`Follower::next`] gave.
    pub fn advance(&mut self, n: usize) {
        self.offset += n as u64;
    }
}

#[cfg(test)]
impl Fill {
    /// Sets the state of a fill made by hand, so tests can drive [`Fill::stream`].
    pub(super) fn set_state(&self, state: FillState) {
        self.state.send_replace(state);
    }
}

/// Reads a file that is committed, or still being written by a fill (a CAB unpacked while it
/// arrives). For use on a
/// blocking thread only: a read past what has arrived waits for the fill to write more.
pub struct FillReader {
    file: Arc<File>,
    pos: u64,
    /// The fill writing the file, or `None` when it is complete.
    arriving: Option<(watch::Receiver<FillState>, tokio::runtime::Handle)>,
}

impl FillReader {
    pub fn committed(file: Arc<File>) -> Self {
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
                _ => return Err(io::Error::other("the download ended without its bytes")),
            };
            if pos < written {
                return Ok(written - pos);
            }
            match done {
                Some(Ok(_)) => return Ok(0),
                Some(Err(())) => return Err(io::Error::other("the download broke off")),
                None => {
                    if handle.block_on(rx.changed()).is_err() {
                        return Err(io::Error::other("the download ended without its bytes"));
                    }
                }
            }
        }
    }

    /// The whole length (waits for the end of the download).
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

impl Read for FillReader {
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

impl Seek for FillReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len()?.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.pos)
    }
}
