//! The work of filling: a download from an upstream, a CAB's member unpacked while the CAB
//! arrives, a copy of a stored blob from the bucket. Each publishes its bytes on the fill's
//! state as they land in its temp file and ends in an [`Ended`] that the cache settles
//! (`cache::drive`: commit order, memory, registry). The work sees only a narrow [`Work`]
//! context, never the cache.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use super::fill::{Fill, FillReader, FillState, Progress};
use super::Entry;
use crate::store::{ObjectDir, StoredSymbol, SymbolStore, TempObject};
use crate::upstream::encoding::Encoding;
use crate::upstream::Found;

/// What a fill's work needs of the cache, and nothing more.
pub(super) struct Work<'a> {
    /// Where cached files are written and committed.
    pub objects: &'a ObjectDir,
    /// For copies of stored files from the bucket.
    pub store: &'a Arc<SymbolStore>,
    /// `cache.max_unpacked_size`: bounds CAB members and content-decoded bodies.
    pub max_unpacked_size: u64,
    /// Wakes eviction.
    pub evict_now: &'a tokio::sync::Notify,
    /// See [`Work::disk_full`].
    pub disk_short: &'a AtomicU64,
    /// Bytes of the cache's files.
    pub cache_size: &'a AtomicU64,
}

impl Work<'_> {
    /// A download of `needed` bytes, `written` of them in a temp file about to be deleted,
    /// found the disk full: least recently used files are evicted to make the room it
    /// lacked, below `cache.max_size` if need be, so that the next request for it can be
    /// cached. A `cache.max_size` bigger than the disk would otherwise fail every miss that
    /// does not fit, for good. (Evicting cannot make room beyond the cache's own files: a
    /// download bigger than that is left to fail, never emptying the cache for nothing.)
    fn disk_full(&self, key: &symhub_core::SymbolKey, needed: u64, written: u64) {
        let cached = self.cache_size.load(Ordering::Relaxed);
        let dir = self.objects.tmp_dir();
        let free = rustix::fs::statvfs(&dir).map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize));
        let short = needed.saturating_sub(free.saturating_add(written));
        let helps = short <= cached;
        tracing::error!(key = %key, dir = %dir.display(), needed, short, evicting = helps,
            "the cache's disk is full: this download is not cached{}. Set cache.max_size \
             below the room the disk of storage.data_dir has",
            if helps { "; least recently used files are evicted to make room for it" } else { ", and is bigger than evicting could make room for" });
        if helps {
            // A little more than it lacked: other writes are filling the disk too.
            let margin = (needed / 20).max(1 << 20);
            self.disk_short.fetch_max(short + margin, Ordering::Relaxed);
            self.evict_now.notify_one();
        }
    }
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
    /// A stored file whose blob is no longer in the bucket (see [`FillState::Vanished`]).
    Vanished,
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
        // The request that started the fill runs on this thread (http::workers): let it
        // send its response headers now, before the first write.
        tokio::task::yield_now().await;
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
        let written = sink.written();
        let needed = len.unwrap_or(written + arrived);
        sink = match sink.write_async(chunks).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                work.disk_full(&fill.key, needed, written);
                return Ended::Failed;
            }
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
        upstream.broken.note(&fill.key);
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(key = %fill.key, blob = %stored.sha256, "blob gone from the bucket since the key's row was read (replaced or deleted): looking the key up again");
            return Ended::Vanished;
        }
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
    let checked = match failure {
        Some(reason) => Err(reason),
        None => match sink.finish() {
            Ok(done) if done.sha256 == stored.sha256 => Ok(done),
            Ok(done) => Err(format!("bytes hash to {}, not to the name", done.sha256)),
            Err(e) => Err(format!("cannot hash the copy: {e}")),
        },
    };
    let done = match checked {
        Ok(done) => done,
        Err(reason) => {
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
