//! Background maintenance of the cache: least-recently-used eviction down to a low-water mark
//! below `cache.max_size` (or further, when a download found the disk full), batched
//! access-time writes, and purging expired negative entries.
//!
//! Eviction removes the index row first, then the file, then the memory entry: a request that
//! still holds the old metadata finds the file gone and is treated as a miss; a request
//! already streaming keeps its open descriptor and finishes normally.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Cache;
use crate::store::object_id;

/// Evict down to this fraction of `max_size`, so one new file does not trigger eviction
/// again straight away.
const LOW_WATER: f64 = 0.95;
const BATCH: usize = 256;
const PERIOD: Duration = Duration::from_secs(30);

impl Cache {
    /// Runs forever; spawn it once.
    pub async fn maintain(self: Arc<Self>) {
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = self.evict_now.notified() => {}
                _ = tokio::time::sleep(PERIOD) => ticks += 1,
            }
            let this = self.clone();
            let purge = ticks % 20 == 0;
            let _ = tokio::task::spawn_blocking(move || {
                this.flush_touches();
                this.evict();
                if purge {
                    let _ = this.index.purge_expired_negatives();
                }
            })
            .await;
        }
    }

    /// Writes pending access times to the index.
    pub fn flush_touches(&self) {
        let touches: Vec<(String, i64)> = std::mem::take(
            &mut *self
                .pending_touches
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
        .into_iter()
        .collect();
        if !touches.is_empty() {
            if let Err(e) = self.index.touch_many(&touches) {
                tracing::error!("cannot record cache access times: {e}");
            }
        }
    }

    /// After `key`'s index row is gone: its file, what memory holds of it, and its bytes in
    /// the cache's size. The size left.
    pub(super) fn unlinked(&self, key: &str, size: u64) -> u64 {
        if let Err(e) = self.objects.remove(&object_id(key)) {
            tracing::warn!(key, "removed entry's file could not be deleted: {e}");
        }
        self.memory.remove(key);
        self.open_files.remove(key);
        let now = self.size.fetch_sub(size, Ordering::Relaxed) - size;
        self.metrics.cache_size.set(now);
        self.metrics.cache_entries.dec();
        now
    }

    fn evict(&self) {
        let (size, short) = (
            self.size.load(Ordering::Relaxed),
            self.disk_short.swap(0, Ordering::Relaxed),
        );
        if size <= self.max_size && short == 0 {
            return;
        }
        // A full disk asks for room below `cache.max_size` (what a download found missing).
        let target = ((self.max_size as f64 * LOW_WATER) as u64).min(size.saturating_sub(short));
        let mut evicted = Evicted::default();
        // A file bigger than the cache can keep goes first, whatever its age: evicting the
        // least recently used for it would empty the cache, and it would go next anyway
        // (break-it pass: one 2 MB PDB on a 1 MiB cache emptied it at every fetch).
        let oversized = self.index.larger_than(target, BATCH);
        let mut step = match oversized {
            Ok(victims) => self.evict_rows(victims, target, &mut evicted),
            Err(e) => {
                tracing::error!("cannot look for cache entries too big to keep: {e}");
                Step::Stop
            }
        };
        while matches!(step, Step::More) && self.size.load(Ordering::Relaxed) > target {
            step = match self.index.oldest(BATCH) {
                Ok(v) if !v.is_empty() => self.evict_rows(v, target, &mut evicted),
                Ok(_) => Step::Stop,
                Err(e) => {
                    tracing::error!("cannot choose cache entries to evict: {e}");
                    Step::Stop
                }
            };
        }
        if evicted.files > 0 {
            let Evicted { files, bytes } = evicted;
            tracing::info!(files, bytes, "evicted least recently used cache entries");
        }
    }

    /// Evicts `victims` in order until the cache is at `target` bytes.
    fn evict_rows(&self, victims: Vec<(String, u64)>, target: u64, done: &mut Evicted) -> Step {
        for (key, size) in victims {
            let removed = match self.index.remove(&key) {
                // A full disk has no room for the index's journal: the file goes first,
                // to make some (a request that still finds the row takes the missing
                // file for a miss).
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DiskFull =>
                {
                    let _ = self.objects.remove(&object_id(&key));
                    self.index.remove(&key)
                }
                removed => removed,
            };
            match removed {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(key, "cannot evict: {e}");
                    return Step::Stop;
                }
            }
            let now = self.unlinked(&key, size);
            self.metrics.evictions.inc();
            done.files += 1;
            done.bytes += size;
            if now <= target {
                return Step::Reached;
            }
        }
        Step::More
    }
}

/// Where an eviction pass stands.
enum Step {
    /// Still above its target.
    More,
    Reached,
    /// Cannot go on (the index failed, or has nothing left).
    Stop,
}

#[derive(Default)]
struct Evicted {
    files: u64,
    bytes: u64,
}
