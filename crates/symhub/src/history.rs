//! Request counts over time, kept by the server for the console's chart: every
//! [`INTERVAL`], the hits, misses (asked upstream or the bucket), remembered misses and bytes
//! served during it, for the last [`POINTS`] intervals (an hour). Counting is one relaxed
//! atomic add per request; sampling runs on its own task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub const INTERVAL: Duration = Duration::from_secs(10);
pub const POINTS: usize = 360;

/// What happened during one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Point {
    /// End of the interval, unix seconds.
    #[serde(skip)]
    pub at: u64,
    pub hits: u64,
    pub misses: u64,
    pub negatives: u64,
    pub bytes: u64,
}

/// How a request's outcome (the request log's `outcome`) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hit,
    Miss,
    Negative,
}

fn kind(outcome: &str) -> Option<Kind> {
    match outcome {
        "hit" | "store" | "store-redirect" | "redirect" | "section" => Some(Kind::Hit),
        "miss" | "coalesced" | "store-fetch" | "store-coalesced" => Some(Kind::Miss),
        "negative" => Some(Kind::Negative),
        _ => None,
    }
}

#[derive(Default)]
pub struct History {
    hits: AtomicU64,
    misses: AtomicU64,
    negatives: AtomicU64,
    bytes: AtomicU64,
    /// Totals at the last sample, and the points so far (oldest first).
    sampled: Mutex<(Point, VecDeque<Point>)>,
}

impl History {
    /// Counts one request by its outcome; requests that are not symbol requests (API
    /// calls) count only their bytes.
    pub fn count(&self, outcome: &str, bytes: u64) {
        let counter = match kind(outcome) {
            Some(Kind::Hit) => &self.hits,
            Some(Kind::Miss) => &self.misses,
            Some(Kind::Negative) => &self.negatives,
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Totals since start.
    pub fn totals(&self) -> Point {
        Point {
            at: 0,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            negatives: self.negatives.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Closes the current interval at `now`.
    pub fn sample(&self, now: SystemTime) {
        let t = self.totals();
        let mut sampled = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        let last = sampled.0;
        let point = Point {
            at: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            hits: t.hits - last.hits,
            misses: t.misses - last.misses,
            negatives: t.negatives - last.negatives,
            bytes: t.bytes - last.bytes,
        };
        sampled.0 = t;
        if sampled.1.len() == POINTS {
            sampled.1.pop_front();
        }
        sampled.1.push_back(point);
    }

    /// The points so far, oldest first.
    pub fn points(&self) -> Vec<Point> {
        let sampled = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        sampled.1.iter().copied().collect()
    }

    /// Samples every [`INTERVAL`] until dropped (run as a task).
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.sample(SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_point_holds_what_happened_in_its_interval() {
        let h = History::default();
        h.count("hit", 100);
        h.count("negative", 0);
        h.count("whoami", 50);
        h.sample(SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        h.count("miss", 7);
        h.count("store", 3);
        h.sample(SystemTime::UNIX_EPOCH + Duration::from_secs(20));
        let p = h.points();
        assert_eq!((p[0].hits, p[0].negatives, p[0].bytes), (1, 1, 100));
        assert_eq!(
            (p[1].hits, p[1].misses, p[1].bytes, p[1].at),
            (1, 1, 10, 20)
        );
        for _ in 0..POINTS + 5 {
            h.sample(SystemTime::now());
        }
        assert_eq!(h.points().len(), POINTS);
    }
}
