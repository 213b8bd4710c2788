//! The cache's two in-memory maps: what it knows of a key (the memory map), and the open
//! files of hot entries. What a key weighs in the memory map: its strings plus the map's
//! own bookkeeping, so `cache.memory_size` bounds bytes, not a count of keys of any size.
//!
//! Both are `quick_cache` maps: sharded, one read lock and a flag store per lookup, and
//! S3-FIFO eviction. moka's lookups, which log each read for its eviction policy, cost
//! ~800 instructions each, and a hit makes two (callgrind).

use std::sync::Arc;
use std::time::SystemTime;

use super::Entry;

/// The hasher of the maps every request probes: foldhash, randomly seeded per process;
/// std's SipHash cost ~150 instructions per probe of a symbol path.
type Hasher = foldhash::fast::RandomState;

/// Normalized key → what memory knows of it, bounded in bytes by [`Known::weight`].
pub(super) type Memory = quick_cache::sync::Cache<String, Known, Weigh, Hasher>;

/// Normalized key → the entry's open file, bounded in files (`cache.open_files`).
pub(super) type OpenFiles =
    quick_cache::sync::Cache<String, OpenFile, quick_cache::UnitWeighter, Hasher>;

/// A kept-open file and the content it holds (its SHA-256, as the entry it was opened for
/// gave it).
#[derive(Clone)]
pub(super) struct OpenFile {
    sha256: Arc<str>,
    file: Arc<std::fs::File>,
}

/// `entry`'s file: the one kept open for its key if it holds the entry's content, else
/// opened now and kept. An entry read from the row of a replacement (a new upload of the
/// key, committed a moment before the kept files are forgotten) never gets the replaced
/// file: that served one version's bytes under the other's length (break-it pass). An
/// error means the file is gone (evicted, removed by hand).
pub(super) fn open_entry(files: &OpenFiles, entry: &Entry) -> std::io::Result<Arc<std::fs::File>> {
    if let Some(open) = files.get(&entry.key) {
        if *open.sha256 == *entry.sha256 {
            return Ok(open.file);
        }
    }
    let file = Arc::new(std::fs::File::open(&entry.path)?);
    let open = OpenFile {
        sha256: entry.sha256.as_str().into(),
        file: file.clone(),
    };
    files.insert(entry.key.clone(), open);
    Ok(file)
}

/// The memory map, holding up to `bytes` of [`Known::weight`]. Its first allocation is
/// sized for keys of ~700: an entry's weight (a remembered miss weighs about half).
pub(super) fn memory(bytes: u64) -> Memory {
    map(bytes / 700, bytes, Weigh)
}

/// The open-file map, holding up to `files` descriptors.
pub(super) fn open_files(files: u64) -> OpenFiles {
    map(files, files, quick_cache::UnitWeighter)
}

/// A map of up to `capacity` in `weigh`'s units; `keys` only sizes its first allocation.
fn map<V: Clone, W: quick_cache::Weighter<String, V> + Clone>(
    keys: u64,
    capacity: u64,
    weigh: W,
) -> quick_cache::sync::Cache<String, V, W, Hasher> {
    let keys = keys.clamp(16, 1 << 20) as usize;
    quick_cache::sync::Cache::with(keys, capacity, weigh, Hasher::default(), Default::default())
}

/// [`Known::weight`] for the memory map.
#[derive(Clone, Copy)]
pub(super) struct Weigh;

impl quick_cache::Weighter<String, Known> for Weigh {
    fn weight(&self, key: &String, known: &Known) -> u64 {
        known.weight(key).into()
    }
}

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

/// What one key of the memory map costs besides its strings: the map's slot, its index
/// and the allocator's rounding. Measured with `bench/memory` and the map unbounded:
/// ~450 bytes of RSS per remembered miss of a 65-byte key, of which SQLite's page caches
/// (bounded, 8 MiB each) took up to ~170.
const KNOWN_OVERHEAD: usize = 300;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_map_is_bounded_in_bytes() {
        let bound = 256 * 1024;
        let map = memory(bound);
        let negative = Known::Negative {
            digest: 1,
            until: SystemTime::UNIX_EPOCH,
        };
        let key = |i: usize| format!("miss{i:07}.pdb/{i:032X}1/miss{i:07}.pdb");
        for i in 0..10_000 {
            map.insert(key(i), negative.clone());
            assert!(map.weight() <= bound, "{} > {bound}", map.weight());
        }
        // Each weighs its key plus the overhead: the map holds what fits, the latest kept.
        let each = negative.weight(&key(0)) as usize;
        assert!(map.len() * each <= bound as usize);
        assert!(map.len() * each > bound as usize / 2, "{} keys", map.len());
        assert!(map.get(&key(9_999)).is_some());
    }

    #[test]
    fn open_files_are_bounded_in_files() {
        let map = open_files(20);
        let file = OpenFile {
            sha256: "0".into(),
            file: Arc::new(std::fs::File::open("/dev/null").unwrap()),
        };
        for i in 0..100 {
            map.insert(format!("k{i}"), file.clone());
        }
        assert!(map.len() <= 20, "{}", map.len());
    }

    /// A key's replacement is opened for itself, never given the kept file of the
    /// version it replaced; the replaced version still gets its own.
    #[test]
    fn a_replaced_file_is_not_served_for_its_replacement() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let entry = |sha: &str, bytes: &[u8]| {
            let path = dir.path().join(sha);
            std::fs::write(&path, bytes).unwrap();
            Entry {
                key: "a.pdb/1/a.pdb".into(),
                size: bytes.len() as u64,
                sha256: sha.into(),
                last_modified: SystemTime::UNIX_EPOCH,
                upstream: String::new(),
                path,
                source: super::super::Source::Store,
                etag: http::HeaderValue::from_static("\"e\""),
                http_date: http::HeaderValue::from_static("d"),
                last_touch: Default::default(),
            }
        };
        let read = |f: Arc<std::fs::File>| {
            let mut s = String::new();
            (&*f).read_to_string(&mut s).unwrap();
            s
        };
        let files = open_files(10);
        let (old, new) = (entry("1111", b"old"), entry("2222", b"newer"));
        assert_eq!(read(open_entry(&files, &old).unwrap()), "old");
        assert_eq!(read(open_entry(&files, &new).unwrap()), "newer");
        let kept = open_entry(&files, &new).unwrap();
        assert!(
            Arc::ptr_eq(&kept, &open_entry(&files, &new).unwrap()),
            "kept open"
        );
    }
}
