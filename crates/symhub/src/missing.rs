//! The missing-symbol ledger: every symbol request that ended in a 404 after upstreams were
//! asked (or a remembered miss) is counted, so a crash pipeline can see which symbols to go
//! and find. Counting is one map update under a lock on the request path; a background task
//! writes the counts to the store's database in one transaction per `missing.flush_interval`
//! (so every instance of a shared store adds to one ledger), and the table is kept to
//! `missing.max_keys` keys. Between writes at most [`MAX_PENDING`] keys are held; misses of
//! further keys wait for the next write's room (counted in the log, never unbounded). A
//! write starts early once [`FLUSH_AT`] keys wait, so a burst of distinct misses costs a few
//! hundred KiB, not megabytes (`bench/memory`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use http::HeaderMap;

use crate::config::MissingConfig;
use crate::store::missing::Missed;
use crate::store::{unix_millis, SymbolStore};

/// Keys counted between two writes, at most.
pub const MAX_PENDING: usize = 20_000;

/// Keys waiting that start a write before `missing.flush_interval` is up.
pub const FLUSH_AT: usize = 2_000;

/// Client kinds, by their `User-Agent`, as bits of the ledger's `clients` column.
pub const CLIENT_KINDS: [(&str, i64); 7] = [
    ("symsrv", 1),
    ("dotnet", 2),
    ("minidump", 4),
    ("debuginfod", 8),
    ("curl", 16),
    ("browser", 32),
    ("other", 64),
];

/// The kind of client a `User-Agent` names: symsrv.dll (WinDbg, Visual Studio, WPA),
/// dotnet-symbol / SymbolStore, rust-minidump or Breakpad, elfutils' libdebuginfod (gdb,
/// debuginfod-find), curl, a browser.
pub fn client_kind(headers: &HeaderMap) -> i64 {
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .as_bytes();
    // Case-insensitive without lowercasing a copy: this runs on every remembered 404.
    let has = |needle: &str| {
        ua.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    let starts = |prefix: &str| {
        ua.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let kind = match () {
        _ if ua.is_empty() => "other",
        _ if has("microsoft-symbol-server") || has("symsrv") => "symsrv",
        _ if has("dotnet") || has("symbolstore") => "dotnet",
        _ if has("minidump") || has("breakpad") => "minidump",
        _ if has("elfutils") || has("debuginfod") => "debuginfod",
        _ if starts("curl/") => "curl",
        _ if starts("mozilla/") => "browser",
        _ => "other",
    };
    CLIENT_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(64, |(_, bit)| *bit)
}

/// The kinds in a `clients` bit set.
pub fn client_names(bits: i64) -> Vec<&'static str> {
    CLIENT_KINDS
        .iter()
        .filter(|(_, bit)| bits & bit != 0)
        .map(|(k, _)| *k)
        .collect()
}

pub struct Ledger {
    store: Arc<SymbolStore>,
    config: MissingConfig,
    pending: Mutex<Pending>,
    /// Told when [`FLUSH_AT`] keys wait.
    full: Notify,
}

/// One key's misses since the last write; the key is the map's.
struct PendingMiss {
    display: Box<str>,
    first_seen: i64,
    last_seen: i64,
    count: i64,
    /// Shared by consecutive misses with the same answers (most of them).
    answers: Arc<str>,
    clients: i64,
}

#[derive(Default)]
struct Pending {
    keys: HashMap<Box<str>, PendingMiss, foldhash::fast::RandomState>,
    /// The answers of the last miss counted, for the next one to share.
    last_answers: Option<Arc<str>>,
    /// Misses not counted because `keys` was full.
    dropped: u64,
}

impl Ledger {
    pub fn new(store: Arc<SymbolStore>, config: &MissingConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            config: config.clone(),
            pending: Mutex::default(),
            full: Notify::new(),
        })
    }

    /// Counts a miss of `key` (normalized; `display` as asked), with what the upstreams
    /// answered and the request's headers (its client kind).
    pub fn record(&self, key: &str, display: &str, answers: &str, headers: &HeaderMap) {
        if !self.config.enabled {
            return;
        }
        let client = client_kind(headers);
        let now = unix_millis(SystemTime::now());
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let answers = match &p.last_answers {
            Some(last) if **last == *answers => last.clone(),
            _ => {
                let shared: Arc<str> = answers.into();
                p.last_answers = Some(shared.clone());
                shared
            }
        };
        if let Some(m) = p.keys.get_mut(key) {
            m.count += 1;
            m.last_seen = now;
            m.clients |= client;
            m.answers = answers;
            return;
        }
        if p.keys.len() >= MAX_PENDING {
            p.dropped += 1;
            return;
        }
        p.keys.insert(
            key.into(),
            PendingMiss {
                display: display.into(),
                first_seen: now,
                last_seen: now,
                count: 1,
                answers,
                clients: client,
            },
        );
        if p.keys.len() == FLUSH_AT {
            self.full.notify_one();
        }
    }

    /// Writes what was counted since the last write (blocking: the database).
    pub fn flush(&self) {
        let (batch, dropped) = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let keys = std::mem::take(&mut p.keys);
            let batch: Vec<Missed> = keys
                .into_iter()
                .map(|(key, m)| Missed {
                    key: key.into(),
                    display: m.display.into(),
                    first_seen: m.first_seen,
                    last_seen: m.last_seen,
                    count: m.count,
                    answers: m.answers.to_string(),
                    clients: m.clients,
                })
                .collect();
            (batch, std::mem::take(&mut p.dropped))
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "missing-symbol ledger: more than {MAX_PENDING} distinct keys missed within \
                 missing.flush_interval; these misses were not counted"
            );
        }
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_missing(&batch, self.config.max_keys) {
            tracing::error!(
                keys = batch.len(),
                "cannot write the missing-symbol ledger (these counts are lost): {e}"
            );
        }
    }

    /// Writes the counts every `missing.flush_interval`, for as long as the server runs.
    pub async fn run(self: Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.flush_interval) => {}
                _ = self.full.notified() => {}
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.flush()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_kinds_by_user_agent() {
        let kind = |ua: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::USER_AGENT, ua.parse().unwrap());
            client_names(client_kind(&h))
        };
        assert_eq!(kind("Microsoft-Symbol-Server/10.0.0.0"), ["symsrv"]);
        assert_eq!(kind("dotnet-symbol/1.0"), ["dotnet"]);
        assert_eq!(
            kind("elfutils/0.188,Linux/x86_64,debian/12"),
            ["debuginfod"]
        );
        assert_eq!(kind("curl/7.88.1"), ["curl"]);
        assert_eq!(kind("Mozilla/5.0 (X11)"), ["browser"]);
        assert_eq!(kind("something"), ["other"]);
        assert_eq!(kind("MICROSOFT-SYMBOL-SERVER/10.0"), ["symsrv"]);
        assert_eq!(kind("Curl/8.5"), ["curl"]);
        assert_eq!(kind("cur"), ["other"]);
        assert_eq!(kind(""), ["other"]);
        assert_eq!(client_names(1 | 16), ["symsrv", "curl"]);
    }
}
