//! `[symbolication]`: Breakpad symbols made on demand, `/symbolicate/v5` and `/api/minidump`,
//! and the bounds of each request; `[missing]`: the missing-symbol ledger; `[retention]`: when
//! expired uploads are removed.

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolicationConfig {
    /// Make a missing `.sym` from its PDB, ELF or Mach-O debug file (found in the store, the
    /// cache or upstreams) when no store, package or upstream has the `.sym` itself.
    pub on_demand: bool,
    /// Time one on-demand conversion may take before it is given up (remembered as a miss).
    #[serde(with = "humantime_serde")]
    pub convert_timeout: Duration,
    /// Memory (address space) of one conversion: dump_syms reads its input whole.
    pub convert_max_memory: ByteSize,
    /// Conversions that may run at once (0: one per core).
    pub max_conversions: usize,
    /// Memory for parsed symbol files (estimated at 2.5× their `.sym` size), least recently
    /// used evicted first: a hot module is parsed once.
    pub memory_cache: ByteSize,
    /// Largest `/symbolicate/v5` body.
    pub max_request_size: ByteSize,
    /// Jobs per `/symbolicate/v5` request (Eliot's limit is 10; the Firefox Profiler sends
    /// at most 10).
    pub max_jobs: usize,
    /// `memoryMap` entries per job.
    pub max_modules: usize,
    /// Frames per job, all stacks together (the Firefox Profiler sends at most 10,000
    /// addresses per request).
    pub max_frames: usize,
    /// Largest minidump accepted by `/api/minidump`.
    pub max_minidump_size: ByteSize,
    /// `/symbolicate/v5` and `/api/minidump` requests worked on at once (0: two per core);
    /// more wait their turn (within `request_timeout`). Bounds their memory together.
    pub max_concurrent_requests: usize,
    /// Time one `/symbolicate/v5` or `/api/minidump` request may take, its body, symbol
    /// fetches and conversions included; past it the answer is 408 naming this setting.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for SymbolicationConfig {
    fn default() -> Self {
        Self {
            on_demand: true,
            convert_timeout: Duration::from_secs(600),
            convert_max_memory: ByteSize::gib(8),
            max_conversions: 0,
            memory_cache: ByteSize::mib(512),
            max_request_size: ByteSize::mib(5),
            max_jobs: 10,
            max_modules: 2000,
            max_frames: 20_000,
            max_minidump_size: ByteSize::mib(256),
            max_concurrent_requests: 0,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// `[missing]`: the missing-symbol ledger (`GET /api/missing`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MissingConfig {
    /// Count every symbol request that ends in a 404.
    pub enabled: bool,
    /// Keys kept; beyond, those asked least recently are dropped.
    pub max_keys: u64,
    /// How often counted misses are written to the store's database (in one transaction).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for MissingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_keys: 100_000,
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// `[retention]`: expired upload transactions are removed (`crate::store::retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the server looks for expired transactions and removes them.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
        }
    }
}
