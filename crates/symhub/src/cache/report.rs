//! What the console and `/api/status` see of the cache: its use against its limit, the
//! downloads in progress with how far each has got, one entry's record, and the removal of
//! one entry by an admin (the next request fetches it again).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::fill::FillState;
use super::index::CachedEntry;
use super::Cache;

/// A download in progress.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FillReport {
    pub key: String,
    /// The upstream sending it; `None` while upstreams are still being asked.
    pub upstream: Option<String>,
    /// Bytes received so far.
    pub received: u64,
    /// The announced length, when there was one.
    pub size: Option<u64>,
    /// Requests following it besides the one that started it.
    pub waiters: usize,
}

impl Cache {
    /// Bytes in the cache, and `cache.max_size`.
    pub fn usage(&self) -> (u64, u64) {
        (self.size.load(Ordering::Relaxed), self.max_size)
    }

    /// Every fill in progress, largest first.
    pub fn fills_in_progress(&self) -> Vec<FillReport> {
        let fills: Vec<_> = self.fills().values().cloned().collect();
        let mut out: Vec<FillReport> = fills
            .iter()
            .map(|f| {
                let (upstream, received, size) = match &*f.state.borrow() {
                    FillState::Streaming(p) => (Some(p.upstream.to_string()), p.written, p.len),
                    _ => (None, 0, None),
                };
                FillReport {
                    key: f.key.to_string(),
                    upstream,
                    received,
                    size,
                    waiters: f.state.receiver_count().saturating_sub(1),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.size
                .unwrap_or(b.received)
                .cmp(&a.size.unwrap_or(a.received))
        });
        out
    }

    /// The cache's record of `norm` (a normalized key), if it holds it.
    pub async fn cached(self: &Arc<Self>, norm: &str) -> Option<CachedEntry> {
        let (index, key) = (self.index.clone(), norm.to_owned());
        tokio::task::spawn_blocking(move || index.get(&key))
            .await
            .ok()?
            .ok()
            .flatten()
    }

    /// Removes `norm` from the cache: its record, its file and what memory holds of it.
    /// Whether it was there.
    pub async fn evict_one(self: &Arc<Self>, norm: &str) -> bool {
        let (this, key) = (self.clone(), norm.to_owned());
        tokio::task::spawn_blocking(move || {
            let entry = this.index.get(&key).ok().flatten()?;
            this.index.remove(&key).unwrap_or(false).then(|| {
                this.unlinked(&key, entry.size);
            })
        })
        .await
        .ok()
        .flatten()
        .is_some()
    }
}
