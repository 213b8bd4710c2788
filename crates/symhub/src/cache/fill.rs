//! One upstream download shared by every request for its key ("single flight with a tee").
//!
//! The fill runs in its own task, so a client that disconnects never aborts it. Its progress
//! is published on a `watch` channel: the response headers as soon as they are known, then
//! the number of bytes durably handed to the temp file. Every request, the first or the
//! fiftieth, reads the temp file through its own offset (`pread` on a shared descriptor) up to
//! that count, so a slow client costs a file offset, not a queue of buffered bytes, and every
//! waiter streams from byte 0 while the download is still running.
//!
//! Commit order: length checked against Content-Length → fsync → rename → index row →
//! memory → state `done`. A failure at any step deletes the temp file and reports the stream
//! as broken to waiters (they cut their response rather than send wrong bytes); nothing is
//! cached and no negative entry is written.

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use symhub_core::SymbolKey;
use tokio::sync::watch;

use super::index::CachedEntry;
use super::{Cache, Entry, FillFrom, Lookup, Source};
use crate::store::{object_id, StoredSymbol, TempObject};
use crate::upstream::encoding::Encoding;
use crate::upstream::{Found, Resolution};

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
    /// Bytes of a stored key, from the bucket (not an upstream).
    pub from_store: bool,
    /// The cache's generation when the fill began ([`Cache::generation`]).
    pub(super) born: u64,
    state: watch::Sender<FillState>,
}

impl Fill {
    pub fn new(key: SymbolKey, slot: String, from_store: bool, born: u64) -> Self {
        Self {
            key,
            slot,
            from_store,
            born,
            state: watch::Sender::new(FillState::Resolving),
        }
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

/// The fill task's body, boxed so that the cycle fill → lookup → fill has a nameable type.
pub fn run(
    cache: Arc<Cache>,
    fill: Arc<Fill>,
    from: FillFrom,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        match from {
            FillFrom::Upstreams(headers) => resolve(&cache, &fill, &headers).await,
            FillFrom::Bucket(stored) => from_bucket(&cache, &fill, stored).await,
        }
        // Whatever path was taken, nobody may wait forever.
        if matches!(*fill.state.borrow(), FillState::Resolving) {
            fail(&cache, &fill);
        }
        cache.end_fill(&fill);
    })
}

async fn resolve(cache: &Arc<Cache>, fill: &Arc<Fill>, headers: &HeaderMap) {
    let norm = fill.key.normalized().to_owned();
    // A fill for this key may have committed between our lookup and our registration.
    let index = cache.index.clone();
    let key = norm.clone();
    if let Ok(Ok(Some(e))) = tokio::task::spawn_blocking(move || index.get(&key)).await {
        let entry = cache.remember(e, fill.born);
        conclude(cache, fill, |s| *s = FillState::Ready(entry));
        return;
    }
    let definitive = match cache.upstreams.find(&fill.key, headers).await {
        Resolution::Found(found) => return download(cache, fill, found).await,
        Resolution::NotFound { definitive } => definitive,
    };
    if let Some(cab_key) = fill
        .key
        .compressed_variant()
        .filter(|_| cache.decompress_cab)
    {
        match compressed(cache, &cab_key, headers).await {
            Ok(Some(cab)) => return unpack(cache, fill, cab).await,
            Ok(None) => {}
            Err(()) => return not_found(cache, fill, false).await,
        }
    }
    not_found(cache, fill, definitive).await
}

async fn not_found(cache: &Arc<Cache>, fill: &Arc<Fill>, definitive: bool) {
    if definitive {
        cache.put_negative(&fill.slot, fill.born).await;
        conclude(cache, fill, |s| *s = FillState::NotFound);
    } else {
        fail(cache, fill);
    }
}

/// The CAB for a compressed key, going through the cache like any request (so a concurrent
/// `foo.pd_` request shares the download, and the CAB stays cached): committed, or still
/// arriving. `Ok(None)`: definitively absent; `Err`: unknown.
async fn compressed(
    cache: &Arc<Cache>,
    key: &SymbolKey,
    headers: &HeaderMap,
) -> Result<Option<CabSource>, ()> {
    let fill = match cache.lookup(key, headers, true).await {
        Lookup::Hit(e) => return Ok(Some(CabSource::Committed(e))),
        Lookup::Negative | Lookup::LocalOnly | Lookup::Redirect(_) => return Ok(None),
        Lookup::Unavailable => return Err(()),
        Lookup::Fill { fill, .. } => fill,
    };
    match fill.headers().await {
        FillState::Streaming(p) => Ok(Some(CabSource::Arriving(fill, p))),
        FillState::Ready(e) => Ok(Some(CabSource::Committed(e))),
        FillState::NotFound => Ok(None),
        FillState::Resolving | FillState::Failed | FillState::Unavailable => Err(()),
    }
}

/// Where the bytes of a CAB are read from while its single member is unpacked.
enum CabSource {
    Committed(Arc<Entry>),
    /// Its download is in progress: the member is unpacked as the CAB arrives.
    Arriving(Arc<Fill>, Progress),
}

/// fsync + rename + index: after this the entry is served to everyone.
async fn commit(
    sink: TempObject,
    cache: &Arc<Cache>,
    fill: &Arc<Fill>,
    upstream: &str,
    last_modified: SystemTime,
) -> anyhow::Result<Arc<Entry>> {
    let (cache, fill) = (cache.clone(), fill.clone());
    let done = sink.finish();
    let entry = CachedEntry {
        key: fill.key.normalized().to_owned(),
        size: done.size,
        sha256: done.sha256.clone(),
        last_modified,
        upstream: upstream.to_owned(),
    };
    tokio::task::spawn_blocking(move || {
        done.commit(&cache.objects, &object_id(&entry.key))?;
        cache.publish(&fill, entry)
    })
    .await?
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

async fn download(cache: &Arc<Cache>, fill: &Arc<Fill>, found: Found) {
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
    let mut sink = match cache.objects.writer() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file in the cache: {e}");
            fail(cache, fill);
            return;
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
        if !encoding.is_identity() && sink.written() + arrived > cache.max_unpacked_size {
            break Some(format!(
                "decoded body over cache.max_unpacked_size ({} bytes)",
                cache.max_unpacked_size
            ));
        }
        sink = match sink.write_async(chunks).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(key = %fill.key, "cannot write to the cache: {e}");
                fail(cache, fill);
                return;
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
        fail(cache, fill);
        return;
    }
    if let Some(reason) = failure {
        tracing::warn!(upstream = %upstream.name, key = %fill.key, "download failed, nothing cached: {reason}");
        upstream.failure();
        fail(cache, fill);
        return;
    }
    let result = commit(sink, cache, fill, &upstream.name, last_modified).await;
    finish(cache, fill, result);
}

fn finish(cache: &Cache, fill: &Arc<Fill>, result: anyhow::Result<Arc<Entry>>) {
    let done = match result {
        Ok(entry) => Ok(entry),
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot commit to the cache: {e:#}");
            Err(())
        }
    };
    conclude(cache, fill, |s| {
        if let FillState::Streaming(p) = s {
            if let Ok(entry) = &done {
                p.written = entry.size;
            }
            p.done = Some(done);
        }
    });
}

/// Ends the fill: it leaves the registry first, then its final state is published. So a
/// request that arrives after the end never joins a finished fill: it finds the committed
/// entry or the negative entry, or (after a failure) starts afresh.
fn conclude(cache: &Cache, fill: &Arc<Fill>, f: impl FnOnce(&mut FillState)) {
    cache.end_fill(fill);
    fill.state.send_modify(f);
}

fn fail(cache: &Cache, fill: &Arc<Fill>) {
    conclude(cache, fill, |s| match s {
        FillState::Streaming(p) => p.done = Some(Err(())),
        s => *s = FillState::Failed,
    });
}

/// Serves `foo.pdb` from `foo.pd_`: the single member is unpacked into the fill's temp file,
/// published chunk by chunk like a download. The CAB header gives the member's size, so
/// clients get their status and Content-Length as soon as the header is in, and the MSZIP or
/// LZX blocks decode in order while the CAB still arrives (memory: one block).
async fn unpack(cache: &Arc<Cache>, fill: &Arc<Fill>, cab: CabSource) {
    let sink = match cache.objects.writer() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file in the cache: {e}");
            fail(cache, fill);
            return;
        }
    };
    let (cab_key, upstream, last_modified) = match &cab {
        CabSource::Committed(e) => (e.key.clone(), e.upstream.as_str().into(), e.last_modified),
        CabSource::Arriving(f, p) => (
            f.key.normalized().to_owned(),
            p.upstream.clone(),
            p.last_modified,
        ),
    };
    let reader = match &cab {
        CabSource::Committed(e) => match cache.open_entry(e) {
            Ok(file) => super::cab::CabReader::committed(file),
            Err(err) => {
                tracing::warn!(key = %fill.key, cab = %cab_key, "cannot open the cached CAB: {err}");
                return fail(cache, fill);
            }
        },
        CabSource::Arriving(f, p) => super::cab::CabReader::arriving(p.file.clone(), f.subscribe()),
    };
    let file = sink.file().clone();
    let max = cache.max_unpacked_size;
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
            fail(cache, fill);
            return;
        }
    };
    let result = commit(sink, cache, fill, &upstream, last_modified).await;
    finish(cache, fill, result);
}

/// Streams a stored blob from the bucket into this instance's local copies, serving it
/// while it arrives. The last byte is published only once length and SHA-256 match the
/// store's record, so no client ever receives a whole body of wrong bytes: a mismatch cuts
/// every response one byte short.
async fn from_bucket(cache: &Arc<Cache>, fill: &Arc<Fill>, stored: StoredSymbol) {
    use futures_util::StreamExt;
    let body = match cache.store.read_remote(&stored.sha256).await {
        Ok(body) => body,
        Err(e) => {
            // The key is ours: never ask upstreams for it, never remember a miss.
            tracing::error!(key = %fill.key, "store file unavailable: {e}");
            return conclude(cache, fill, |s| *s = FillState::Unavailable);
        }
    };
    let mut sink = match cache.store.writer() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %fill.key, "cannot create a temp file for the bucket's local copies: {e}");
            return fail(cache, fill);
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
                return fail(cache, fill);
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
    let sha = sink.sha256();
    let failure = failure.or_else(|| {
        (sha != stored.sha256).then(|| format!("bytes hash to {sha}, not to the name"))
    });
    if let Some(reason) = failure {
        tracing::error!(key = %fill.key, blob = %stored.sha256, store = cache.store.describe(), "bucket blob not served: {reason}");
        return fail(cache, fill);
    }
    let (c, f) = (cache.clone(), fill.clone());
    let result = tokio::task::spawn_blocking(move || {
        let path = c.store.adopt_copy(sink.finish(), &stored.sha256)?;
        Ok(c.remember_at(super::store_entry(stored), path, Source::Store, f.born))
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!(e)));
    finish(cache, fill, result);
}
