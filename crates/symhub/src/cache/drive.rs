//! The cache's side of a fill: the task that decides where the bytes come from, hands the
//! work to [`super::fill`], and settles how it ended.
//!
//! Deciding is the cache's: a key already committed meanwhile is ready; otherwise the
//! upstreams are asked; when none has the plain name and a CAB form can exist (`foo.pd_`),
//! the CAB is looked up like any request (so a concurrent `foo.pd_` request shares its
//! download) and the plain file unpacked from it, while it still arrives. The fill itself
//! never calls back into the cache.
//!
//! Settling is the cache's too, in commit order: fsync → rename → index row → memory →
//! the fill leaves the registry → its final state is published. So a request that arrives
//! after the end never joins a finished fill: it finds the committed entry or the negative
//! entry, or (after a failure) starts afresh. A failure at any step cuts the readers'
//! streams; nothing is cached and no negative entry is written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::HeaderMap;
use symhub_core::SymbolKey;

use super::derive::{names_binary, remake};
use super::fetch::{self, CabSource, Ended, Work};
use super::fill::{Fill, FillState};
use super::index::CachedEntry;
use super::{store_entry, Cache, Entry, FillFrom, Lookup, Source};
use crate::store::object_id;
use crate::upstream::Resolution;

/// What the index holds for a fill's key when the fill starts: left by another fill of it
/// that ended since this one's lookup.
enum Meanwhile {
    Committed(CachedEntry),
    /// A negative entry, live until then.
    Missing(std::time::SystemTime),
    Nothing,
}

/// Counts the ends of fills by key (normalized), in a few stripes. By key, not by slot: a
/// fill of one spelling of a key commits the file every spelling is served, and leaves a
/// 404 for its own slot only. Two keys that share a stripe only cost a fill a re-read of the
/// index it could have skipped; a single count would move on every miss of a busy server.
pub(super) struct FillEnds([AtomicU64; 64]);

impl Default for FillEnds {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl FillEnds {
    fn stripe(&self, key: &SymbolKey) -> &AtomicU64 {
        use std::hash::BuildHasher;
        // Fixed keys: the stripe only has to be the same within this process.
        let h = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default()
            .hash_one(key.normalized());
        &self.0[h as usize % self.0.len()]
    }

    /// The ends counted for `key`'s stripe.
    pub(super) fn of(&self, key: &SymbolKey) -> u64 {
        self.stripe(key).load(Ordering::SeqCst)
    }

    /// Counts the end of a fill of `key`, after all it wrote to the index.
    pub(super) fn count(&self, key: &SymbolKey) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
    }
}

/// What came of a fill, before it is settled.
pub(super) enum Outcome {
    /// Not asked: a fill that ended meanwhile left a negative entry.
    Remembered,
    Ended(Ended),
    /// Committed by an earlier fill between the lookup and this one.
    Ready(Arc<Entry>),
    /// No upstream has it; `definitive` when every one said so.
    NotFound {
        definitive: bool,
    },
}

impl Cache {
    /// Waits until every fill has ended (committed, or failed) or `deadline` has passed, at
    /// shutdown: a download whose last client got its last byte during the drain is still
    /// being hashed, fsynced and renamed, and was lost for the cache when the process left
    /// first (break-it pass: a 20 MB file was fetched again after every restart).
    pub async fn wait_for_fills(&self, deadline: std::time::Instant) {
        let left = || self.fills().len();
        if left() > 0 {
            tracing::info!(
                fills = left(),
                "waiting for downloads in progress to be committed"
            );
        }
        while left() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if left() > 0 {
            tracing::warn!(
                fills = left(),
                "downloads abandoned at shutdown (shutdown_grace ended); nothing of them is cached"
            );
        }
    }

    fn work(&self) -> Work<'_> {
        Work {
            objects: &self.objects,
            store: &self.store,
            evict_now: &self.evict_now,
            disk_short: &self.disk_short,
            cache_size: &self.size,
            max_unpacked_size: self.max_unpacked_size,
        }
    }

    /// The fill's task. Runs detached from any request, so a client that goes away never
    /// aborts a download others may be reading.
    pub(super) async fn drive(self: Arc<Self>, fill: Arc<Fill>, from: FillFrom) {
        let outcome = match from {
            FillFrom::Upstreams { headers, ended, .. } => {
                match self.from_upstreams(&fill, &headers, ended).await {
                    Outcome::NotFound { definitive } if self.derivable(&fill) => {
                        self.derive(&fill, definitive, &headers).await
                    }
                    outcome => outcome,
                }
            }
            FillFrom::Bucket(stored) => {
                Outcome::Ended(fetch::copy_from_bucket(&self.work(), &fill, stored).await)
            }
        };
        self.settle(&fill, outcome).await;
        // Whatever path was taken, nobody may wait forever.
        if matches!(*fill.state.borrow(), FillState::Resolving) {
            self.fail(&fill);
        }
        self.end_fill(&fill);
    }

    async fn from_upstreams(
        self: &Arc<Self>,
        fill: &Arc<Fill>,
        headers: &HeaderMap,
        ended: u64,
    ) -> Outcome {
        // What a fill of this key that ended since this one's lookup left: its file, or its
        // 404. A lookup whose index hop was slow could miss both the other fill (gone from
        // the registry) and its negative entry (written after the lookup read the index),
        // and ask upstreams a second time (break-it pass, 1 key in 1,572 under load). When
        // no fill of the key, in any spelling, ended since, the index is not read again:
        // that hop to the blocking pool was on every cold miss's way to its first byte.
        if self.fills_ended.of(&fill.key) != ended {
            match self.meanwhile(fill, names_binary(headers)).await {
                Meanwhile::Committed(e) => return Outcome::Ready(self.remember(e, fill.born)),
                Meanwhile::Missing(until) => {
                    let known = super::Known::Negative {
                        digest: fill.digest,
                        until,
                    };
                    self.keep(fill.born, fill.key.normalized(), known);
                    return Outcome::Remembered;
                }
                Meanwhile::Nothing => {}
            }
        }
        let definitive = match self
            .upstreams
            .find(&fill.key, fill.target.as_ref(), headers)
            .await
        {
            Resolution::Found(found) => {
                return Outcome::Ended(fetch::download(&self.work(), fill, found).await)
            }
            Resolution::NotFound {
                definitive,
                failures,
            } => {
                if !failures.is_empty() {
                    let _ = fill.failures.set(failures.join(", ").into());
                }
                definitive
            }
        };
        let Some(cab_key) = fill
            .key
            .compressed_variant()
            .filter(|_| self.decompress_cab)
        else {
            return Outcome::NotFound { definitive };
        };
        match self.cab(&cab_key, headers).await {
            Ok(Some(cab)) => Outcome::Ended(fetch::unpack(&self.work(), fill, cab).await),
            Ok(None) => Outcome::NotFound { definitive },
            Err(()) => Outcome::NotFound { definitive: false },
        }
    }

    /// What the index holds now for the fill's key and slot. An index that cannot say is
    /// [`Meanwhile::Nothing`]: upstreams are asked.
    async fn meanwhile(&self, fill: &Fill, names_binary: bool) -> Meanwhile {
        let (index, slot) = (self.index.clone(), fill.slot.clone());
        let key = fill.key.normalized().to_owned();
        let read = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
            if let Some(e) = index
                .get(&key)?
                .filter(|e| !remake(&e.upstream, names_binary))
            {
                return Ok(Meanwhile::Committed(e));
            }
            Ok(match index.get_negative(&slot)? {
                Some(until) => Meanwhile::Missing(until),
                None => Meanwhile::Nothing,
            })
        })
        .await;
        match read {
            Ok(Ok(m)) => m,
            _ => Meanwhile::Nothing,
        }
    }

    /// The CAB for a compressed key, through the cache like any request: committed, or
    /// still arriving. `Ok(None)`: definitively absent; `Err`: unknown.
    async fn cab(
        self: &Arc<Self>,
        key: &symhub_core::SymbolKey,
        headers: &HeaderMap,
    ) -> Result<Option<CabSource>, ()> {
        let committed = |e: Arc<Entry>| match self.open_entry(&e) {
            Ok(file) => Ok(Some(CabSource::Committed(e, file))),
            Err(_) => Err(()),
        };
        let cab_fill = match self.lookup(key, headers.into(), true, None).await {
            Lookup::Hit(e) => return committed(e),
            Lookup::Negative | Lookup::LocalOnly | Lookup::Redirect(_) => return Ok(None),
            Lookup::Unavailable => return Err(()),
            Lookup::Fill { fill, .. } => fill,
        };
        match cab_fill.headers().await {
            FillState::Streaming(p) => Ok(Some(CabSource::Arriving(cab_fill, p))),
            FillState::Ready(e) => committed(e),
            FillState::NotFound => Ok(None),
            FillState::Resolving
            | FillState::Failed
            | FillState::Unavailable
            | FillState::Vanished => Err(()),
        }
    }

    async fn settle(self: &Arc<Self>, fill: &Arc<Fill>, outcome: Outcome) {
        match outcome {
            Outcome::Ready(entry) => self.conclude(fill, |s| *s = FillState::Ready(entry)),
            Outcome::NotFound { definitive: true } => {
                self.put_negative(fill).await;
                self.conclude(fill, |s| *s = FillState::NotFound);
            }
            Outcome::Remembered => self.conclude(fill, |s| *s = FillState::NotFound),
            Outcome::NotFound { definitive: false } | Outcome::Ended(Ended::Failed) => {
                self.fail(fill)
            }
            Outcome::Ended(Ended::Unavailable) => {
                self.conclude(fill, |s| *s = FillState::Unavailable)
            }
            Outcome::Ended(Ended::Vanished) => self.conclude(fill, |s| *s = FillState::Vanished),
            Outcome::Ended(Ended::Written {
                temp,
                upstream,
                last_modified,
            }) => {
                let (this, f) = (self.clone(), fill.clone());
                let result = tokio::task::spawn_blocking(move || {
                    // A download is hashed here, after its clients had their bytes.
                    let done = temp.finish()?;
                    let entry = CachedEntry {
                        key: f.key.normalized().to_owned(),
                        size: done.size,
                        sha256: done.sha256.clone(),
                        last_modified,
                        upstream: upstream.to_string(),
                    };
                    done.commit(&this.objects, &object_id(&entry.key))?;
                    this.publish(&f, entry)
                })
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!(e)));
                self.finish(fill, result);
            }
            Outcome::Ended(Ended::Copied { stored, path }) => {
                let entry = self.remember_at(store_entry(stored), path, Source::Store, fill.born);
                self.finish(fill, Ok(entry));
            }
        }
    }

    /// Publishes the end of a streaming fill: its entry, or the failure of its commit.
    fn finish(&self, fill: &Arc<Fill>, result: anyhow::Result<Arc<Entry>>) {
        let done = match result {
            Ok(entry) => Ok(entry),
            Err(e) => {
                tracing::error!(key = %fill.key, "cannot commit to the cache: {e:#}");
                Err(())
            }
        };
        self.conclude(fill, |s| {
            if let FillState::Streaming(p) = s {
                if let Ok(entry) = &done {
                    p.written = entry.size;
                }
                p.done = Some(done);
            }
        });
    }

    /// Ends the fill: it leaves the registry first, then its final state is published.
    fn conclude(&self, fill: &Arc<Fill>, f: impl FnOnce(&mut FillState)) {
        self.end_fill(fill);
        fill.state.send_modify(f);
    }

    fn fail(&self, fill: &Arc<Fill>) {
        self.conclude(fill, |s| match s {
            FillState::Streaming(p) => p.done = Some(Err(())),
            s => *s = FillState::Failed,
        });
    }
}
