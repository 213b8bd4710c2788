//! What the cache forgets when told: an entry whose file turned out to be gone, and the
//! remembered misses of a key ("forget this miss" of the missing-symbol ledger).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use symhub_core::SymbolKey;

use super::{miss_prefix, Cache};

impl Cache {
    /// Forgets an entry whose file turned out to be gone (removed behind symhub's back).
    pub async fn forget(self: &Arc<Self>, key: &str) {
        self.memory.remove(key);
        self.open_files.remove(key);
        let this = self.clone();
        let key = key.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(Some(e)) = this.index.get(&key) {
                if this.index.remove(&key).unwrap_or(false) {
                    this.size.fetch_sub(e.size, Ordering::Relaxed);
                }
            }
        })
        .await;
    }

    /// Forgets every remembered miss of `key`, and of its CAB form (`foo.pd_`, looked up
    /// when the plain name was missing), so the next request asks upstreams again ("forget
    /// this miss" of the missing-symbol ledger).
    pub async fn forget_misses(self: &Arc<Self>, key: &SymbolKey) {
        let cab = key.compressed_variant();
        let keys: Vec<String> = std::iter::once(key)
            .chain(cab.as_ref())
            .map(|k| k.normalized().to_owned())
            .collect();
        for norm in &keys {
            // A file found meanwhile is forgotten too: the next request reads its index row.
            self.memory.remove(norm);
        }
        let index = self.index.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for norm in keys {
                if let Err(e) = index.remove_negatives(&miss_prefix(&norm)) {
                    tracing::warn!(key = norm, "cannot forget the remembered misses: {e}");
                }
            }
        })
        .await;
    }
}
