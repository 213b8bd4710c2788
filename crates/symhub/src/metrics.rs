//! Prometheus metrics, exposed as text on `GET /metrics`.
//!
//! Names (all prefixed `symhub_`): `requests_total{outcome}`, `served_bytes_total`,
//! `sendfile_bytes_total` (of those, sent from the page cache without a copy),
//! `upstream_requests_total{upstream,status}` (status is the HTTP code or `error`),
//! `upstream_latency_seconds{upstream}` (time to response headers), `cache_size_bytes`,
//! `cache_entries`, `cache_evictions_total`, `fills_in_flight`, `upstream_down{upstream}`,
//! `connections{worker}` (client connections open on each connection worker thread).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamStatus {
    upstream: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

/// Outcomes counted without a look-up in the family (a lock and a hash per request).
const COMMON_OUTCOMES: [&str; 6] = ["hit", "negative", "miss", "coalesced", "store", "invalid"];

pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    /// `requests{outcome}` of [`COMMON_OUTCOMES`], in that order: the family's own counters.
    common: [Counter; COMMON_OUTCOMES.len()],
    served_bytes: Counter,
    /// Body bytes of files sent from the page cache with `sendfile(2)` ([`crate::http`]).
    pub sendfile_bytes: Counter,
    upstream_requests: Family<UpstreamStatus, Counter>,
    upstream_latency: Family<UpstreamLabel, Histogram>,
    upstream_down: Family<UpstreamLabel, Gauge>,
    pub cache_size: Gauge<u64, AtomicU64>,
    pub cache_entries: Gauge,
    pub evictions: Counter,
    pub fills_in_flight: Gauge,
    connections: Family<WorkerLabel, Gauge>,
    /// The same counts over the last hour, for the console ([`crate::history`]).
    pub history: std::sync::Arc<crate::history::History>,
    pub started: std::time::SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("symhub");
        let requests = Family::<OutcomeLabel, Counter>::default();
        registry.register("requests", "Symbol requests by outcome", requests.clone());
        let served_bytes = Counter::default();
        registry.register(
            "served_bytes",
            "Body bytes sent to clients",
            served_bytes.clone(),
        );
        let sendfile_bytes = Counter::default();
        registry.register(
            "sendfile_bytes",
            "Body bytes of files sent from the page cache without a copy (sendfile)",
            sendfile_bytes.clone(),
        );
        let upstream_requests = Family::<UpstreamStatus, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests to upstreams by upstream and status",
            upstream_requests.clone(),
        );
        let upstream_latency = Family::<UpstreamLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "upstream_latency_seconds",
            "Time from request to response headers, per upstream",
            upstream_latency.clone(),
        );
        let upstream_down = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "upstream_down",
            "1 while an upstream is in its blackout period",
            upstream_down.clone(),
        );
        let cache_size = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "cache_size_bytes",
            "Bytes in the proxy cache",
            cache_size.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Files in the proxy cache",
            cache_entries.clone(),
        );
        let evictions = Counter::default();
        registry.register(
            "cache_evictions",
            "Files evicted from the proxy cache",
            evictions.clone(),
        );
        let fills_in_flight = Gauge::default();
        registry.register(
            "fills_in_flight",
            "Upstream downloads in progress",
            fills_in_flight.clone(),
        );
        let connections = Family::<WorkerLabel, Gauge>::default();
        registry.register(
            "connections",
            "Client connections open, per connection worker thread",
            connections.clone(),
        );
        let common = COMMON_OUTCOMES
            .map(|outcome| requests.get_or_create(&OutcomeLabel { outcome }).clone());
        Self {
            registry,
            requests,
            common,
            served_bytes,
            sendfile_bytes,
            upstream_requests,
            upstream_latency,
            upstream_down,
            cache_size,
            cache_entries,
            evictions,
            fills_in_flight,
            connections,
            history: Default::default(),
            started: std::time::SystemTime::now(),
        }
    }
}

impl Metrics {
    pub fn request(&self, outcome: &'static str, bytes: u64) {
        match COMMON_OUTCOMES.iter().position(|o| *o == outcome) {
            Some(i) => self.common[i].inc(),
            None => self.requests.get_or_create(&OutcomeLabel { outcome }).inc(),
        };
        self.served_bytes.inc_by(bytes);
        self.history.count(outcome, bytes);
    }

    /// The gauge of the connections worker `worker` serves (`symhub_connections`), which
    /// the workers also balance by (`http::workers`).
    pub fn connections(&self, worker: usize) -> Gauge {
        let worker = u32::try_from(worker).unwrap_or(u32::MAX);
        self.connections
            .get_or_create(&WorkerLabel { worker })
            .clone()
    }

    pub fn upstream_request(&self, upstream: &str, status: &str) {
        self.upstream_requests
            .get_or_create(&UpstreamStatus {
                upstream: upstream.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn upstream_latency(&self, upstream: &str, took: Duration) {
        self.upstream_latency
            .get_or_create(&UpstreamLabel {
                upstream: upstream.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn set_upstream_down(&self, upstream: &str, down: bool) {
        self.upstream_down
            .get_or_create(&UpstreamLabel {
                upstream: upstream.to_owned(),
            })
            .set(down as i64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
