//! The one question every front door asks: "the bytes of this key, from wherever they are".
//!
//! [`Cache::resolve`] takes a validated key and the client's headers (some are forwarded
//! upstream) and returns a finished [`Answer`]: a committed file (already open), a download
//! in progress to stream from, a redirect, or not-found with its reason. It owns the whole
//! policy: the blocklist, bucket redirects, code-id redirects, joining or starting a fill,
//! and looking again when a file vanished between lookup and open (eviction, or removal
//! behind symhub's back). Callers map the answer and nothing more: the SymSrv route turns it
//! into a response, and in-process consumers (a converter needing a PDB) read the file or
//! wait for the fill.

use std::fs::File;
use std::sync::Arc;

use http::HeaderMap;
use symhub_core::SymbolKey;

use super::fill::{Fill, FillState, Progress};
use super::{Cache, Entry, Lookup, Sent, Source};

/// How an answer was reached, for `X-Cache`, `X-Symhub-Source` and the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A committed entry of the proxy cache.
    CacheHit,
    /// A stored file (upload or package), from a local copy.
    Store,
    /// This request started the upstream download.
    Miss,
    /// This request joined an upstream download in progress.
    Coalesced,
    /// A stored file being copied from the bucket; this request started the copy.
    StoreFetch,
    /// A stored file being copied from the bucket; this request joined the copy.
    StoreCoalesced,
}

impl Route {
    /// The `X-Cache` value: a file of our own store is a hit for the client however it got
    /// to this instance.
    pub fn x_cache(self) -> &'static str {
        match self {
            Route::CacheHit | Route::Store | Route::StoreFetch | Route::StoreCoalesced => "HIT",
            Route::Miss => "MISS",
            Route::Coalesced => "COALESCED",
        }
    }

    /// The request log's outcome.
    pub fn outcome(self) -> &'static str {
        match self {
            Route::CacheHit => "hit",
            Route::Store => "store",
            Route::Miss => "miss",
            Route::Coalesced => "coalesced",
            Route::StoreFetch => "store-fetch",
            Route::StoreCoalesced => "store-coalesced",
        }
    }

    /// `X-Symhub-Source`, where it is known: the store or the proxy cache.
    pub fn source(self) -> Option<&'static str> {
        match self {
            Route::CacheHit => Some("cache"),
            Route::Store | Route::StoreFetch | Route::StoreCoalesced => Some("store"),
            Route::Miss | Route::Coalesced => None,
        }
    }

    /// Whether the bytes come from a fill (a download or a bucket copy) of this request's.
    pub fn filled(self) -> bool {
        !matches!(self, Route::CacheHit | Route::Store)
    }
}

/// Where else the bytes are.
pub enum Redirect {
    /// A presigned URL of the store's bucket (`storage.s3.redirect`).
    Bucket(String),
    /// The URL path, below the symbol root, of the module's debug-id key: a Breakpad request
    /// by code file and code id (Tecken's rule; rust-minidump follows it).
    Key(Arc<str>),
}

/// Why a key has no bytes to serve. Every reason is a 404 to SymSrv clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// `cache.blocklist` matches the key: nothing was asked.
    Blocked,
    /// A remembered miss.
    Negative,
    /// The store has the key but its storage cannot be read now.
    Unavailable,
    /// Not stored, and not a key upstreams are asked for (not `<file>/<id>/<name>`).
    LocalOnly,
    /// Every upstream said it has no such file (remembered as a negative entry).
    NotUpstream,
    /// No upstream that could have it answered usably: some failed, were in blackout, or
    /// sent something that is not a file. Nothing is remembered; the next request asks again.
    NotAnswered,
    /// The download began but broke off before the file was complete.
    DownloadFailed,
}

impl Missing {
    pub fn x_cache(self, route: Option<Route>) -> &'static str {
        match (self, route) {
            (Missing::Blocked, _) => "BLOCKED",
            (Missing::Negative, _) => "NEGATIVE",
            (Missing::Unavailable, _) => "UNAVAILABLE",
            (_, Some(route)) => route.x_cache(),
            (_, None) => "MISS",
        }
    }
}

pub enum Answer {
    /// A committed file, open.
    File {
        entry: Arc<Entry>,
        file: Arc<File>,
        route: Route,
    },
    /// A fill in progress whose headers are known; read it with [`Fill::stream`].
    Streaming {
        fill: Arc<Fill>,
        progress: Progress,
        route: Route,
    },
    Redirect(Redirect),
    NotFound {
        why: Missing,
        /// How far the request got: the fill it started or joined, if any.
        route: Option<Route>,
        /// For [`Missing::NotAnswered`]: which upstreams failed and how.
        failures: Option<Arc<str>>,
    },
}

impl Cache {
    /// Resolves `key` to something to serve. Never fails: what goes wrong below is a miss.
    pub async fn resolve(self: &Arc<Self>, key: &SymbolKey, headers: &HeaderMap) -> Answer {
        self.resolve_with(key, headers.into(), true, None).await
    }

    /// [`Cache::resolve`], asking upstreams only with `federate` (a request that already
    /// crossed too many servers is answered from what is here), and debuginfod upstreams for
    /// `target` when the key cannot spell what to ask (a source file). `sent`: what upstreams
    /// would be sent.
    pub async fn resolve_with(
        self: &Arc<Self>,
        key: &SymbolKey,
        sent: Sent<'_>,
        federate: bool,
        target: Option<&Arc<str>>,
    ) -> Answer {
        // An empty set still builds a path candidate per call (255 instructions a request).
        if !self.blocklist.is_empty() && self.blocklist.is_match(key.normalized()) {
            return not_found(Missing::Blocked, None);
        }
        // An entry evicted or deleted between lookup and open is looked up once more.
        for attempt in 0..2 {
            let (fill, leader) = match self.lookup(key, sent, federate, target).await {
                Lookup::Hit(entry) => {
                    if let Some(url) = self.store_redirect(&entry).await {
                        return Answer::Redirect(Redirect::Bucket(url));
                    }
                    let route = match entry.source {
                        Source::Store => Route::Store,
                        Source::Cache => Route::CacheHit,
                    };
                    match self.open_entry(&entry) {
                        Ok(file) => return Answer::File { entry, file, route },
                        Err(_) => {
                            self.forget(&entry.key).await;
                            continue;
                        }
                    }
                }
                Lookup::Redirect(to) => return Answer::Redirect(Redirect::Key(to)),
                Lookup::Negative => return not_found(Missing::Negative, None),
                Lookup::Unavailable => return not_found(Missing::Unavailable, None),
                Lookup::LocalOnly => return not_found(Missing::LocalOnly, None),
                Lookup::Fill { fill, leader } => (fill, leader),
            };
            // Not on the last look, which serves what it finds.
            if attempt == 0 && !leader && self.made_alone_for(&fill, &sent.headers()).await {
                continue;
            }
            // A stored key replaced meanwhile: its new row names bytes that are there.
            if attempt == 0
                && fill.from_store
                && matches!(fill.headers().await, FillState::Vanished)
            {
                continue;
            }
            let route = match (fill.from_store, leader) {
                (true, true) => Route::StoreFetch,
                (true, false) => Route::StoreCoalesced,
                (false, true) => Route::Miss,
                (false, false) => Route::Coalesced,
            };
            return self.answer_of_fill(fill, route).await;
        }
        not_found(Missing::NotUpstream, Some(Route::Miss))
    }

    /// Whether a request that names a PDB's binary joined a fill (someone else's) that made
    /// the `.sym` without it: once that one is committed, the request looks again, and makes
    /// it with the binary (`derive`).
    pub(super) async fn made_alone_for(&self, fill: &Fill, headers: &HeaderMap) -> bool {
        if !super::derive::names_binary(headers) {
            return false;
        }
        let alone = match fill.headers().await {
            FillState::Ready(e) => super::derive::made_without_binary(&e.upstream),
            FillState::Streaming(p) => super::derive::made_without_binary(&p.upstream),
            _ => false,
        };
        alone && fill.finished().await.is_ok()
    }

    async fn answer_of_fill(&self, fill: Arc<Fill>, route: Route) -> Answer {
        let committed = |entry: Arc<Entry>| match self.open_entry(&entry) {
            Ok(file) => Answer::File { entry, file, route },
            Err(_) => not_found(Missing::NotUpstream, Some(route)),
        };
        match fill.headers().await {
            FillState::Unavailable | FillState::Vanished => not_found(Missing::Unavailable, None),
            FillState::NotFound => not_found(Missing::NotUpstream, Some(route)),
            FillState::Resolving | FillState::Failed => Answer::NotFound {
                why: Missing::NotAnswered,
                route: Some(route),
                failures: fill.failures.get().cloned(),
            },
            FillState::Ready(entry) => committed(entry),
            FillState::Streaming(progress) => match &progress.done {
                Some(Ok(entry)) => committed(entry.clone()),
                Some(Err(())) => not_found(Missing::DownloadFailed, Some(route)),
                // Nothing to stream: answered once committed, like any other file.
                None if progress.len == Some(0) => match fill.finished().await {
                    Ok(Some(entry)) => committed(entry),
                    _ => not_found(Missing::DownloadFailed, Some(route)),
                },
                None => Answer::Streaming {
                    fill,
                    progress,
                    route,
                },
            },
        }
    }
}

fn not_found(why: Missing, route: Option<Route>) -> Answer {
    Answer::NotFound {
        why,
        route,
        failures: None,
    }
}
