//! One upstream download shared by every request for its key ("single flight with a tee").
//!
//! The fill runs in its own task, so a client that disconnects never aborts it. Its progress
//! is published on a `watch` channel: the response headers as soon as they are known, then
//! the number of bytes durably handed to the temp file. Every request, the first or the
//! fiftieth, reads the temp file through its own offset (`pread` on a shared descriptor) up to
//! that count, so a slow client costs a file offset, not a queue of buffered bytes, and every
//! waiter streams from byte 0 while the download is still running.
//!
//! This module owns how a fill streams: its state, its readers ([`Fill::stream`], with the
//! hash gate of bucket copies), and the work of filling it (a download, a CAB unpacked, a
//! bucket copy), each ending in an [`Ended`] that the cache settles (`cache::drive`: commit
//! order, memory, registry). The work sees only a narrow [`Work`] context, never the cache.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use symhub_core::SymbolKey;
use tokio::sync::watch;

use super::Entry;
use crate::store::{ObjectDir, StoredSymbol, SymbolStore, TempObject};
use crate::upstream::encoding::Encoding;
use crate::upstream::Found;

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

    /// Bytes of a stored key, copied from the bucket.
    pub(super) fn bucket_copy(mut self) -> Self {
        self.from_store = true;
        self
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

    /// Bytes `start..end` (or to the end) of the fill, following it as it grows. If the
    /// download breaks off, the stream ends in an error, so a reader sees a cut body, never a
    /// short one that looks complete. A copy of a stored file from the bucket is checked
    /// against the store's SHA-256 only once it is whole, so there the range's last byte is
    /// held until the fill has ended well: no reader ever gets a whole body of wrong bytes.
    pub fn stream(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
        use std::io;
        let checked = self.from_store;
        futures_util::stream::try_unfold(
            (self.subscribe(), start),
            move |(mut rx, offset)| async move {
                loop {
                    let (file, len, written, done) = match &*rx.borrow_and_update() {
                        FillState::Streaming(p) => {
                            (p.file.clone(), p.len, p.written, p.done.clone())
                        }
                        _ => return Err(io::Error::other("fill state lost")),
                    };
                    if checked && matches!(done, Some(Err(()))) {
                        return Err(io::Error::other("stored file failed its check"));
                    }
                    // A bucket copy always knows its length (the store's record).
                    let hold = checked && done.is_none();
                    let stop = match end.or(len) {
                        Some(e) if hold => e.saturating_sub(1),
                        Some(e) => e,
                        None => u64::MAX,
                    };
                    let limit = stop.min(written);
                    if offset < limit {
                        let n = (limit - offset).min(CHUNK as u64) as usize;
                        let chunk = super::read::read_chunk(file, offset, n).await?;
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
            },
        )
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

#[cfg(test)]
impl Fill {
    /// Sets the state of a fill made by hand, so tests can drive [`Fill::stream`].
    pub(super) fn set_state(&self, state: FillState) {
        self.state.send_replace(state);
    }
}

/// What a fill's work needs of the cache, and nothing more.
pub(super) struct Work<'a> {
    /// Where cached files are written and committed.
    pub objects: &'a ObjectDir,
    /// For copies of stored files from the bucket.
    pub store: &'a Arc<SymbolStore>,
    /// `cache.max_unpacked_size`: bounds CAB members and content-decoded bodies.
    pub max_unpacked_size: u64,
}

/// How a fill's work ended. The cache settles it (commit, memory, registry, final state).
pub(super) enum Ended {
    /// Whole and checked in a temp file: to be committed under the fill's key.
    Written {
        temp: TempObject,
        upstream: Arc<str>,
        last_modified: SystemTime,
    },
    /// A bucket blob, whole and checked, kept among the local copies at `path`.
    Copied { stored: StoredSymbol, path: PathBuf },
    /// Broken off or refused (the reason is logged): nothing to keep.
    Failed,
    /// A stored file whose bucket cannot be read now.
    Unavailable,
}

/// Where the bytes of a CAB are read from while its single member is unpacked.
pub(super) enum CabSource {
    /// Committed, with its open file.
    Committed(Arc<Entry>, Arc<File>),
    /// Its download is in progress: the member is unpacked as the CAB arrives.
    Arriving(Arc<Fill>, Progress),
}

fn publish_progress(fill: &Arc<Fill>, f: impl FnOnce(&mut Progress)) {
    fill.state.send_modify(|s| {
        if let FillState::Streaming(p) = s {
            f(p)
        }
    });
}

/// Makes bytes available to readers as soon as they are in the temp file. A reader that
/// reaches the announced length ends its response without waiting for the commit (an fsync
/// of a multi-GB file can take seconds); until the commit lands, new requests join the fill
/// and read the same complete temp file.
fn publish_written(fill: &Arc<Fill>, written: u64) {
    publish_progress(fill, |p| p.written = written);
}

/// Downloads an upstream's answer into a temp file, publishing the bytes as they land.
pub(super) async fn download(work: &Work<'_>, fill: &Arc<Fill>, found: Found) -> Ended {
    use futures_util::StreamExt;
    let Found { upstream, response } = found;
    // The length as sent: of the encoded body when there is a Content-Encoding.
    let len = response.content_length();
    let encoding = Encoding::of(response.headers()).unwrap_or(Encoding::Identity);
    let last_modified = response
        .headers()
        .get(http::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(SystemTime::now);
    let mut sink = match work.objects.writer_hashed_at_end() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file in the cache: {e}");
            return Ended::Failed;
        }
    };
    let progress = Progress {
        file: sink.file().clone(),
        // A decoded file's length is known only at its end.
        len: len.filter(|_| encoding.is_identity()),
        written: 0,
        upstream: upstream.name.clone(),
        last_modified,
        done: None,
    };
    // With a known length clients get their headers now. Without one, only once bytes have
    // come: a body that turns out empty is then still a plain 404 (see `Upstream::ask`).
    let mut announced = progress.len.is_some();
    if announced {
        fill.state
            .send_replace(FillState::Streaming(progress.clone()));
    }
    let received = Arc::new(AtomicU64::new(0));
    let body = encoding.decode(response.bytes_stream(), received.clone());
    // Whatever has arrived is written in one hand-off to the blocking pool, so a fast
    // upstream costs a few large writes instead of one per network read.
    let mut body = body.ready_chunks(64);
    let failure = loop {
        let batch = match tokio::time::timeout(upstream.idle_timeout, body.next()).await {
            Err(_) => break Some(format!("no data for {:?}", upstream.idle_timeout)),
            Ok(None) => break None,
            Ok(Some(batch)) => batch,
        };
        let mut chunks = Vec::with_capacity(batch.len());
        let mut broke = None;
        for item in batch {
            match item {
                Ok(c) => chunks.push(c),
                Err(e) => {
                    broke = Some(e);
                    break;
                }
            }
        }
        if len.is_some_and(|l| received.load(Ordering::Relaxed) > l) {
            break Some("more bytes than its Content-Length".into());
        }
        let arrived: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if !encoding.is_identity() && sink.written() + arrived > work.max_unpacked_size {
            break Some(format!(
                "decoded body over cache.max_unpacked_size ({} bytes)",
                work.max_unpacked_size
            ));
        }
        sink = match sink.write_async(chunks).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(key = %fill.key, "cannot write to the cache: {e}");
                return Ended::Failed;
            }
        };
        if !announced && sink.written() > 0 {
            announced = true;
            fill.state
                .send_replace(FillState::Streaming(progress.clone()));
        }
        publish_written(fill, sink.written());
        if let Some(e) = broke {
            break Some(format!("body broke off: {e:#}"));
        }
    };
    let received = received.load(Ordering::Relaxed);
    let failure = failure.or_else(|| {
        len.filter(|l| *l != received)
            .map(|l| format!("body ended after {received} of {l} bytes"))
    });
    if failure.is_none() && sink.written() == 0 {
        // Not the upstream's health: it answered; that one object is unusable.
        tracing::warn!(upstream = %upstream.name, key = %fill.key,
            "upstream sent an empty body; an empty file is never a symbol file, nothing cached");
        return Ended::Failed;
    }
    if let Some(reason) = failure {
        tracing::warn!(upstream = %upstream.name, key = %fill.key, "download failed, nothing cached: {reason}");
        upstream.failure();
        return Ended::Failed;
    }
    Ended::Written {
        temp: sink,
        upstream: upstream.name.clone(),
        last_modified,
    }
}

/// Serves `foo.pdb` from `foo.pd_`: the single member is unpacked into the fill's temp file,
/// published chunk by chunk like a download. The CAB header gives the member's size, so
/// clients get their status and Content-Length as soon as the header is in, and the MSZIP or
/// LZX blocks decode in order while the CAB still arrives (memory: one block).
pub(super) async fn unpack(work: &Work<'_>, fill: &Arc<Fill>, cab: CabSource) -> Ended {
    let sink = match work.objects.writer() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file in the cache: {e}");
            return Ended::Failed;
        }
    };
    let (cab_key, upstream, last_modified) = match &cab {
        CabSource::Committed(e, _) => (e.key.clone(), e.upstream.as_str().into(), e.last_modified),
        CabSource::Arriving(f, p) => (
            f.key.normalized().to_owned(),
            p.upstream.clone(),
            p.last_modified,
        ),
    };
    let reader = match &cab {
        CabSource::Committed(_, file) => FillReader::committed(file.clone()),
        CabSource::Arriving(f, p) => FillReader::arriving(p.file.clone(), f.subscribe()),
    };
    let file = sink.file().clone();
    let max = work.max_unpacked_size;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<super::cab::Event>(16);
    let job = tokio::task::spawn_blocking(move || super::cab::extract(reader, sink, max, tx));
    // Progress events come from the blocking extractor; the async side publishes them.
    while let Some(event) = rx.recv().await {
        match event {
            super::cab::Event::Started { len } => {
                fill.state.send_replace(FillState::Streaming(Progress {
                    file: file.clone(),
                    len: Some(len),
                    written: 0,
                    upstream: upstream.clone(),
                    last_modified,
                    done: None,
                }));
            }
            super::cab::Event::Written(n) => publish_written(fill, n),
        }
    }
    let sink = match job.await {
        Ok(Ok(sink)) => sink,
        failed => {
            let e = match failed {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => unreachable!(),
            };
            tracing::warn!(key = %fill.key, cab = %cab_key, "cannot unpack the CAB: {e}");
            return Ended::Failed;
        }
    };
    Ended::Written {
        temp: sink,
        upstream,
        last_modified,
    }
}

/// Streams a stored blob from the bucket into this instance's local copies, serving it
/// while it arrives. The last byte is published only once length and SHA-256 match the
/// store's record, so no client ever receives a whole body of wrong bytes: a mismatch cuts
/// every response one byte short.
pub(super) async fn copy_from_bucket(
    work: &Work<'_>,
    fill: &Arc<Fill>,
    stored: StoredSymbol,
) -> Ended {
    use futures_util::StreamExt;
    let body = match work.store.read_remote(&stored.sha256).await {
        Ok(body) => body,
        Err(e) => {
            // The key is ours: never ask upstreams for it, never remember a miss.
            tracing::error!(key = %fill.key, "store file unavailable: {e}");
            return Ended::Unavailable;
        }
    };
    let mut sink = match work.store.writer() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file for the bucket's local copies: {e}");
            return Ended::Failed;
        }
    };
    let size = stored.size;
    fill.state.send_replace(FillState::Streaming(Progress {
        file: sink.file().clone(),
        len: Some(size),
        written: 0,
        upstream: "store".into(),
        last_modified: stored.uploaded_at,
        done: None,
    }));
    let mut body = body.ready_chunks(64);
    let failure = loop {
        let Some(batch) = body.next().await else {
            break None;
        };
        let (chunks, broke): (Vec<_>, Vec<_>) = batch.into_iter().partition(|c| c.is_ok());
        let chunks: Vec<_> = chunks.into_iter().flatten().collect();
        let arrived: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if sink.written() + arrived > size {
            break Some(format!("more than the {size} bytes recorded"));
        }
        sink = match sink.write_async(chunks).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(key = %fill.key, "cannot write a local copy of a bucket blob: {e}");
                return Ended::Failed;
            }
        };
        publish_written(fill, sink.written());
        if let Some(Err(e)) = broke.into_iter().next() {
            break Some(e.to_string());
        }
    };
    let failure = failure.or_else(|| {
        (sink.written() != size).then(|| format!("{} of the {size} bytes recorded", sink.written()))
    });
    // Hashed as it was written (the stream's gate needs it before the last byte): no I/O.
    let done = sink.finish();
    let failure = failure.or_else(|| match &done {
        Ok(done) if done.sha256 != stored.sha256 => {
            Some(format!("bytes hash to {}, not to the name", done.sha256))
        }
        Ok(_) => None,
        Err(e) => Some(format!("cannot hash the copy: {e}")),
    });
    let done = match (failure, done) {
        (None, Ok(done)) => done,
        (reason, _) => {
            let reason = reason.unwrap_or_default();
            tracing::error!(key = %fill.key, blob = %stored.sha256, store = work.store.describe(), "bucket blob not served: {reason}");
            return Ended::Failed;
        }
    };
    let store = work.store.clone();
    let sha = stored.sha256.clone();
    match tokio::task::spawn_blocking(move || store.adopt_copy(done, &sha)).await {
        Ok(Ok(path)) => Ended::Copied { stored, path },
        failed => {
            let e = match failed {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => unreachable!(),
            };
            tracing::error!(key = %fill.key, "cannot keep a local copy of a bucket blob: {e}");
            Ended::Failed
        }
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
