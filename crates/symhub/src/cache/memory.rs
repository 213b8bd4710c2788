//! What the cache's memory map holds for a key, and what that weighs: each key by its
//! strings plus the map's own bookkeeping, so `cache.memory_size` bounds bytes, not a count
//! of keys of any size.

use std::sync::Arc;
use std::time::SystemTime;

use super::Entry;

/// What memory knows of a key (the map's value).
#[derive(Clone)]
pub(super) enum Known {
    Entry(Arc<Entry>),
    Redirect(Arc<str>),
    /// No upstream had it when sent as `digest` ([`crate::upstream::Upstreams::wire_digest`]);
    /// remembered until `until`. Kept under the key itself, not its miss slot, so a
    /// remembered 404 costs one lookup in memory, like a hit. A key asked with two digests
    /// keeps the latest in memory; the other is found in the index.
    Negative {
        digest: u64,
        until: SystemTime,
    },
}

/// What one key of the memory map costs besides its strings: moka's entry, its
/// bookkeeping and the allocator's headers (measured with `bench/memory`: ~650 bytes per
/// remembered miss of an 80-byte slot, in RSS).
const KNOWN_OVERHEAD: usize = 550;

impl Known {
    /// Estimated bytes of `key` → `self` in the memory map.
    pub(super) fn weight(&self, key: &str) -> u32 {
        let value = match self {
            Known::Entry(e) => {
                std::mem::size_of::<Entry>()
                    + e.key.capacity()
                    + e.sha256.capacity()
                    + e.upstream.capacity()
                    + e.path.as_os_str().len()
                    + e.etag.len()
                    + e.http_date.len()
            }
            Known::Redirect(to) => to.len(),
            Known::Negative { .. } => 0,
        };
        (KNOWN_OVERHEAD + key.len() + value).min(u32::MAX as usize) as u32
    }
}

/// `cache.memory_size` in bytes, or the deprecated `cache.memory_entries` × 512.
pub(super) fn memory_bytes(c: &crate::config::CacheConfig) -> u64 {
    match c.memory_entries {
        Some(n) => n.saturating_mul(512),
        None => c.memory_size.as_u64(),
    }
}
