//! Resolution of a key to bytes, in this order: the permanent store (uploads) → a code-id
//! redirect into the store (Breakpad `.sym` names) → the proxy cache → a negative entry →
//! a fill from upstreams. What was learned is remembered in one memory map, so a hot key of
//! any kind costs one probe.
//!
//! The cache owns three things:
//! - the committed entries (objects on disk, rows in the index, hot metadata in memory);
//! - negative entries ("no upstream has it"), with their own TTL, in memory and the index;
//! - the fills in progress, one per key ([`fill`]): single flight with a tee, so any number of
//!   concurrent requests for a missing key cause one upstream download that every one of them
//!   streams from, starting at byte 0, while it is still being written.
//!
//! Size is bounded by `cache.max_size` with least-recently-used eviction ([`evict`]), done by
//! one background task in small indexed batches; access times are kept in memory and written
//! to the index in batches, so a hit costs no disk write.

pub mod cab;
pub mod derive;
mod drive;
pub mod evict;
mod fetch;
pub mod fill;
mod forget;
pub mod health;
pub mod index;
mod load;
pub mod local;
mod memory;
use memory::Known;
pub mod read;
pub mod report;
pub mod resolve;
pub mod sent;
pub use sent::Sent;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use http::HeaderMap;
use symhub_core::SymbolKey;
use tokio::sync::Notify;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{
    object_id, unix_millis, unix_secs, BlobLocation, ObjectDir, StoreChange, StoredSymbol,
    SymbolStore,
};
use crate::upstream::Upstreams;
pub use fill::{Fill, FillState};
use index::{CachedEntry, Index};
use load::Loaded;
pub use local::{LocalFile, NoFile};
pub use resolve::{Answer, Missing, Redirect, Route};

/// How often an entry's access time is worth recording. Finer LRU order is not worth a write.
const TOUCH_GRANULARITY_SECS: i64 = 60;

/// A committed cache entry, ready to be served.
#[derive(Debug)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub last_modified: SystemTime,
    pub upstream: String,
    pub path: PathBuf,
    pub source: Source,
    /// Both made once as header values: a hit clones them (a reference count), with no
    /// validation or copy per response.
    etag: http::HeaderValue,
    http_date: http::HeaderValue,
    last_touch: AtomicI64,
}

impl Entry {
    /// A strong validator: the content hash, so it never changes while the bytes do not.
    pub fn etag(&self) -> &str {
        self.etag.to_str().unwrap_or_default()
    }

    /// [`Self::etag`] as the `ETag` header.
    pub fn etag_value(&self) -> &http::HeaderValue {
        &self.etag
    }

    /// `Last-Modified`, formatted once.
    pub fn http_date(&self) -> &str {
        self.http_date.to_str().unwrap_or_default()
    }

    /// [`Self::http_date`] as the `Last-Modified` header.
    pub fn http_date_value(&self) -> &http::HeaderValue {
        &self.http_date
    }
}

/// Where a served entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Uploaded: permanent, never evicted.
    Store,
    /// Proxied from an upstream: evicted least recently used first.
    Cache,
}

/// What a request for a key turns into.
pub(crate) enum Lookup {
    Hit(Arc<Entry>),
    /// A Breakpad request by code file and code id: the URL path of the module's debug-id key.
    Redirect(Arc<str>),
    Negative,
    /// Not in the store, and not a key upstreams are asked for (not `<file>/<id>/<name>`).
    LocalOnly,
    /// The store has the key but cannot read it now (its bucket is unreachable).
    Unavailable,
    /// A fill is running; `leader` is true for the request that started it.
    Fill {
        fill: Arc<Fill>,
        leader: bool,
    },
}

pub struct Cache {
    store: Arc<SymbolStore>,
    objects: ObjectDir,
    index: Arc<Index>,
    /// Hot knowledge, positive and negative, in one map so any lookup costs one probe.
    memory: memory::Memory,
    /// Open descriptors of hot entries, like nginx's `open_file_cache`: a hit then costs
    /// one `pread` instead of open + read + close. Objects are immutable, so a cached
    /// descriptor never serves stale bytes (an evicted file stays readable through it).
    open_files: memory::OpenFiles,
    fills: Mutex<HashMap<String, Arc<Fill>>>,
    pending_touches: Mutex<HashMap<String, i64>>,
    upstreams: Arc<Upstreams>,
    size: AtomicU64,
    max_size: u64,
    negative_ttl: Duration,
    decompress_cab: bool,
    max_unpacked_size: u64,
    evict_now: Notify,
    /// Room a download found missing on a full disk: eviction frees it, below
    /// `cache.max_size` if need be ([`fetch::Work::disk_full`]).
    disk_short: AtomicU64,
    metrics: Arc<Metrics>,
    /// Store hits answer with a redirect to the bucket (`storage.s3.redirect`).
    store_redirects: bool,
    /// See [`Cache::generation`].
    generation: AtomicU64,
    /// Fills ended so far, by key: a fill whose lookup read the index after the last one of
    /// its key ended can trust what it read (see `Cache::from_upstreams`).
    fills_ended: drive::FillEnds,
    /// `cache.blocklist`, over the normalized key.
    blocklist: globset::GlobSet,
    /// Breakpad `.sym` files made on demand ([`derive`]).
    converter: derive::Converter,
}

impl Cache {
    /// Opens the cache under `data_dir/cache`. Start-up cost is one aggregate query and the
    /// removal of leftover temp files; no file is scanned.
    pub fn open(
        config: &Config,
        store: Arc<SymbolStore>,
        upstreams: Arc<Upstreams>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let root = config.storage.data_dir.join("cache");
        let objects = ObjectDir::open(&root)?.with_spare();
        let index = Arc::new(Index::open(&root.join("index.sqlite3"))?);
        let mut blocklist = globset::GlobSetBuilder::new();
        for pattern in &config.cache.blocklist {
            blocklist.add(
                globset::Glob::new(&pattern.to_lowercase())
                    .with_context(|| format!("cache.blocklist: `{pattern}` is not a valid glob"))?,
            );
        }
        if let Some(n) = config.cache.memory_entries {
            tracing::warn!(
                "cache.memory_entries = {n} is deprecated: read as memory_size = {} bytes; \
                 set cache.memory_size instead",
                memory::memory_bytes(&config.cache)
            );
        }
        let size = index.total_size()?;
        metrics.cache_size.set(size);
        metrics.cache_entries.set(index.count()? as i64);
        let cache = Arc::new(Self {
            objects,
            index,
            memory: memory::memory(memory::memory_bytes(&config.cache)),
            open_files: memory::open_files(config.cache.open_files),
            fills: Mutex::default(),
            pending_touches: Mutex::default(),
            upstreams,
            size: AtomicU64::new(size),
            max_size: config.cache.max_size.as_u64(),
            negative_ttl: config.cache.negative_ttl,
            decompress_cab: config.cache.decompress_cab,
            max_unpacked_size: config.cache.max_unpacked_size.as_u64(),
            evict_now: Notify::new(),
            disk_short: AtomicU64::new(0),
            metrics,
            store_redirects: store.redirects_hits(),
            store,
            generation: AtomicU64::new(0),
            fills_ended: drive::FillEnds::default(),
            blocklist: blocklist.build()?,
            converter: derive::Converter::new(config),
        });
        // The store tells the cache what its memory must forget; weakly, since the cache
        // holds the store.
        let weak = Arc::downgrade(&cache);
        cache.store.changes.subscribe(move |change| {
            if let Some(cache) = weak.upgrade() {
                match change {
                    StoreChange::Keys { keys, code } => cache.uploaded(keys, *code),
                    StoreChange::Any => cache.store_changed(),
                }
            }
        });
        Ok(cache)
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    pub fn store(&self) -> &Arc<SymbolStore> {
        &self.store
    }

    /// A presigned bucket URL for a store entry, when hits are answered with redirects.
    pub async fn store_redirect(&self, entry: &Entry) -> Option<String> {
        if !self.store_redirects || entry.source != Source::Store {
            return None;
        }
        let (store, sha) = (self.store.clone(), entry.sha256.clone());
        match tokio::task::spawn_blocking(move || store.locate(&sha, true)).await {
            Ok(BlobLocation::Url(url)) => Some(url),
            _ => None,
        }
    }

    /// Resolves a key. Never fails: anything that goes wrong below is a miss for the client.
    ///
    /// Files are shared by every request for a key, whatever its spelling or headers: a
    /// file is the file. A remembered miss, and a download that may end in one, belong to
    /// what was sent upstream ([`Upstreams::wire_digest`]), so they are kept per key and
    /// digest: a request that would be sent differently asks again.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        key: &SymbolKey,
        sent: Sent<'_>,
        federate: bool,
        target: Option<&Arc<str>>,
    ) -> Lookup {
        // Read before anything is learned, so whatever this lookup remembers is dropped if
        // the store changes meanwhile (see [`Cache::generation`]).
        let born = self.generation();
        let norm = key.normalized();
        let remembered = match self.memory.get(norm) {
            Some(Known::Entry(entry))
                if !derive::made_without_binary(&entry.upstream)
                    || !derive::names_binary(&sent.headers()) =>
            {
                self.touch(&entry);
                return Lookup::Hit(entry);
            }
            // A PDB's `.sym` made alone, asked for with its binary named: made again.
            Some(Known::Entry(_)) => None,
            Some(Known::Redirect(to)) => return Lookup::Redirect(to),
            Some(Known::Negative { digest, until }) => Some((digest, until)),
            None => None,
        };
        // Past a hit: what would be sent upstream matters from here on (made once).
        let digest = self.upstreams.wire_digest(key, &sent.headers());
        // A remembered miss answers, unless it expired or was sent otherwise (the index
        // then knows).
        if remembered.is_some_and(|(d, until)| d == digest && until > SystemTime::now()) {
            return Lookup::Negative;
        }
        let slot = miss_slot(norm, digest);
        if let Some(fill) = self.fills().get(&slot) {
            return Lookup::Fill {
                fill: fill.clone(),
                leader: false,
            };
        }
        // Read before the index is, see `FillFrom::Upstreams::ended`.
        let ended = self.fills_ended.of(key);
        let names_binary = derive::names_binary(&sent.headers());
        match self.load(key, &slot, digest, born, names_binary).await {
            Loaded::Entry(entry) => return Lookup::Hit(entry),
            Loaded::Redirect(to) => return Lookup::Redirect(to),
            Loaded::Negative => return Lookup::Negative,
            Loaded::Unavailable => return Lookup::Unavailable,
            Loaded::Cold(stored) => {
                // The bytes of a stored key do not depend on what upstreams would be sent.
                let slot = norm.to_owned();
                return self.start_or_join_fill(key, slot, FillFrom::Bucket(stored), born);
            }
            Loaded::Nothing => {}
        }
        // Only `<file>/<id>/<name>` keys exist upstream: any other shape (an SSQP package's
        // `12387532`) is never asked for, cached or remembered as missing.
        if !key.is_triple() || !federate {
            return Lookup::LocalOnly;
        }
        self.start_or_join_fill(
            key,
            slot,
            FillFrom::Upstreams {
                headers: sent.headers().into_owned(),
                target: target.cloned(),
                digest,
                ended,
            },
            born,
        )
    }

    /// The entry's file, open. An error means it is gone (evicted or removed by hand).
    pub fn open_entry(&self, entry: &Entry) -> std::io::Result<Arc<std::fs::File>> {
        memory::open_entry(&self.open_files, entry)
    }

    fn fills(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, e: CachedEntry, born: u64) -> Arc<Entry> {
        let path = self.objects.path(&object_id(&e.key));
        self.remember_at(e, path, Source::Cache, born)
    }

    /// Puts what a lookup that began at generation `born` learned into memory, unless the
    /// store changed since. Inserting first and checking after pairs with
    /// [`Cache::changed`] bumping first and forgetting after: whichever runs second removes
    /// the entry.
    ///
    /// A remembered miss never replaces the key's file or redirect: the miss belongs to
    /// other upstream headers (a file is the file for every request), and would otherwise
    /// answer 404 to requests sent like it while the file is here. (Checked, then put: a
    /// file committed in the microsecond between is the one case left. Puts serialized per
    /// key through moka's `and_compute_with` closed it, but left ~10 MiB more RSS after
    /// 100,000 fills, `bench/memory`.)
    fn keep(&self, born: u64, key: &str, known: Known) {
        let miss = matches!(known, Known::Negative { .. });
        let keeps_file = miss
            && self
                .memory
                .get(key)
                .is_some_and(|old| !matches!(old, Known::Negative { .. }));
        if !keeps_file {
            self.memory.insert(key.to_owned(), known);
        }
        if self.generation() != born {
            self.memory.remove(key);
        }
    }

    fn remember_at(&self, e: CachedEntry, path: PathBuf, source: Source, born: u64) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            etag: etag_of(&e.sha256),
            http_date: header_value(httpdate::fmt_http_date(e.last_modified)),
            path,
            source,
            key: e.key,
            size: e.size,
            sha256: e.sha256,
            last_modified: e.last_modified,
            upstream: e.upstream,
            last_touch: AtomicI64::new(unix_secs(SystemTime::now())),
        });
        self.keep(born, &entry.key, Known::Entry(entry.clone()));
        entry
    }

    /// Forgets everything memory knows: a package came or went (any number of keys), or
    /// another process changed the store.
    fn store_changed(&self) {
        self.changed();
        // Copies of stored files in progress may be of replaced bytes: later requests start
        // afresh (those already attached finish what they were sent). Upstream downloads
        // keep their joiners: a busy cluster changes its store often, and detaching them
        // would multiply upstream downloads; a key uploaded elsewhere meanwhile is served
        // from the store once that download ends.
        self.detach_fills(|f| f.from_store);
        self.memory.clear();
        self.open_files.clear();
    }

    /// Forgets what memory knows of keys whose answer an upload just changed: the keys
    /// themselves and any remembered miss of a `.sym` code-id lookup of the module.
    fn uploaded(&self, keys: &[SymbolKey], code: Option<(&str, &str)>) {
        self.changed();
        self.detach_fills(|f| keys.iter().any(|k| k.normalized() == f.key.normalized()));
        // A key's remembered miss is kept under the key: it goes with it.
        for k in keys {
            self.memory.remove(k.normalized());
            self.open_files.remove(k.normalized());
            // A binary is also debuginfod's `executable` of its build id, asked under a key
            // of its own (found by the store's build-id index, not by this key).
            for exe in crate::debuginfod::executable_keys_of(k) {
                self.memory.remove(exe.normalized());
                // Its kept-open file is the replaced one: the new entry's length with the
                // old bytes would be served (break-it pass: a cut old binary to gdb).
                self.open_files.remove(exe.normalized());
            }
        }
        if let Some((file, id)) = code {
            let prefix = format!("{}/{}/", file.to_lowercase(), id.to_lowercase());
            self.memory.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    fn touch(&self, entry: &Entry) {
        if entry.source == Source::Store {
            return;
        }
        let now = unix_secs(SystemTime::now());
        let last = entry.last_touch.load(Ordering::Relaxed);
        if now - last >= TOUCH_GRANULARITY_SECS
            && entry
                .last_touch
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.pending_touches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(entry.key.clone(), unix_millis(SystemTime::now()));
        }
    }

    fn start_or_join_fill(
        self: &Arc<Self>,
        key: &SymbolKey,
        slot: String,
        from: FillFrom,
        born: u64,
    ) -> Lookup {
        let mut fills = self.fills();
        if let Some(fill) = fills.get(&slot) {
            return Lookup::Fill {
                fill: fill.clone(),
                leader: false,
            };
        }
        let fill = Fill::new(key.clone(), slot.clone(), born);
        let fill = Arc::new(match &from {
            FillFrom::Upstreams { target, digest, .. } => fill.upstream(target.clone(), *digest),
            FillFrom::Bucket(stored) => fill.bucket_copy(&stored.sha256),
        });
        fills.insert(slot, fill.clone());
        drop(fills);
        self.metrics.fills_in_flight.inc();
        tokio::spawn(self.clone().drive(fill.clone(), from));
        Lookup::Fill { fill, leader: true }
    }

    /// Counts changes of the store seen by this instance. What a lookup (or the fill it
    /// started) learned is kept in memory only if no change happened since the lookup
    /// began: otherwise an upload that landed meanwhile could be hidden behind an older
    /// answer.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Takes fills out of the registry so that new requests do not join them.
    fn detach_fills(&self, which: impl Fn(&Fill) -> bool) {
        let mut fills = self.fills();
        let before = fills.len();
        fills.retain(|_, f| !which(f));
        for _ in fills.len()..before {
            self.metrics.fills_in_flight.dec();
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes a fill from the registry, once, and only if it is still the registered one.
    /// Whatever the fill wrote to the index is written by now.
    fn end_fill(&self, fill: &Arc<Fill>) {
        let mut fills = self.fills();
        // Counted before the fill leaves the registry, and even when it left it earlier (a
        // detached fill): a lookup that no longer finds it sees the count move.
        self.fills_ended.count(&fill.key);
        if fills.get(&fill.slot).is_some_and(|f| Arc::ptr_eq(f, fill)) {
            fills.remove(&fill.slot);
            self.metrics.fills_in_flight.dec();
        }
    }

    /// Remembers that no upstream has the fill's key, when sent as it was.
    async fn put_negative(self: &Arc<Self>, fill: &Fill) {
        let expires = SystemTime::now() + self.negative_ttl;
        let known = Known::Negative {
            digest: fill.digest,
            until: expires,
        };
        self.keep(fill.born, fill.key.normalized(), known);
        let this = self.clone();
        let key = fill.slot.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = this.index.put_negative(&key, expires) {
                tracing::error!(key, "cannot record negative entry: {e}");
            }
        })
        .await;
    }

    /// Publishes a committed object: index row, memory, size accounting. Called after the
    /// object was renamed into place.
    fn publish(&self, fill: &Fill, e: CachedEntry) -> anyhow::Result<Arc<Entry>> {
        let old = self.index.get(&e.key)?;
        self.index.insert(&e)?;
        // A file made again (a `.sym` remade with its binary) replaced the one kept open.
        self.open_files.remove(&e.key);
        let added = e.size;
        let path = self.objects.path(&object_id(&e.key));
        let entry = self.remember_at(e, path, Source::Cache, fill.born);
        match old {
            Some(old) => {
                self.size.fetch_sub(old.size, Ordering::Relaxed);
            }
            None => {
                self.metrics.cache_entries.inc();
            }
        };
        let size = self.size.fetch_add(added, Ordering::Relaxed) + added;
        self.metrics.cache_size.set(size);
        if size > self.max_size {
            self.evict_now.notify_one();
        }
        Ok(entry)
    }
}

/// The `ETag` of a file whose SHA-256 is `sha256`: its first 128 bits, quoted.
fn etag_of(sha256: &str) -> http::HeaderValue {
    header_value(format!("\"{}\"", &sha256[..32.min(sha256.len())]))
}

/// A header value made of text symhub formats itself (hex, an HTTP date): always valid.
fn header_value(text: String) -> http::HeaderValue {
    http::HeaderValue::try_from(text).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// Where a miss of `norm` for requests sent upstream as `digest` is remembered, and where
/// its download is registered. Keys never hold control characters, so the newline keeps
/// every (key, digest) pair apart and lets all misses of a key be found by prefix.
fn miss_slot(norm: &str, digest: u64) -> String {
    use std::fmt::Write;
    let mut slot = String::with_capacity(norm.len() + 17);
    slot.push_str(norm);
    slot.push('\n');
    let _ = write!(slot, "{digest:016x}");
    slot
}

/// The prefix of every [`miss_slot`] of `norm`.
fn miss_prefix(norm: &str) -> String {
    format!("{norm}\n")
}

/// Where a fill gets its bytes.
pub enum FillFrom {
    /// Upstream symbol servers, asked with the client's `headers`.
    Upstreams {
        headers: HeaderMap,
        /// The debuginfod path to ask, when the key cannot spell it.
        target: Option<Arc<str>>,
        /// [`Upstreams::wire_digest`] of what they are sent.
        digest: u64,
        /// The ends of fills of its key counted when the lookup began reading the index
        /// ([`drive::FillEnds`]). Only fills write the cache index, so if the count has not
        /// moved, what the lookup read is still what the index says.
        ended: u64,
    },
    /// The store's bucket: a stored key of which this instance has no local copy.
    Bucket(StoredSymbol),
}

fn store_entry(s: StoredSymbol) -> CachedEntry {
    CachedEntry {
        key: s.key,
        size: s.size,
        sha256: s.sha256,
        last_modified: s.uploaded_at,
        upstream: "store".into(),
    }
}
