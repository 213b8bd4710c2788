//! One upstream's record for the console's status page: requests asked, how many failed,
//! mean time to an answer, and the last failure with when it happened. Kept by the server
//! itself (Prometheus has the same counts as time series, for those who run one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

#[derive(Default)]
pub struct UpstreamStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Sum of the time to each answer's headers, in microseconds.
    latency_us: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

/// A copy of [`UpstreamStats`] at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub errors: u64,
    /// Mean time to an answer, in ms; `None` before the first request.
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::store::time::serialize_opt")]
    pub last_error_at: Option<SystemTime>,
}

impl UpstreamStats {
    /// One request answered after `took`; `failed`: the failure's kind when it failed.
    pub fn record(&self, took: Duration, failed: Option<&str>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(kind) = failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((SystemTime::now(), kind.to_owned()));
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let requests = self.requests.load(Ordering::Relaxed);
        let latency = self.latency_us.load(Ordering::Relaxed);
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        StatsSnapshot {
            requests,
            errors: self.errors.load(Ordering::Relaxed),
            latency_ms: (requests > 0)
                .then(|| (latency as f64 / requests as f64 / 100.0).round() / 10.0),
            last_error_at: last.as_ref().map(|(at, _)| *at),
            last_error: last.map(|(_, kind)| kind),
        }
    }
}
