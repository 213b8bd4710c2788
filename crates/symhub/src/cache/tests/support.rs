//! What the fill tests share: a fake upstream that is a real HTTP server on a loopback port,
//! scripted step by step (send these bytes, wait for the test, break the connection), and a
//! [`Cache`] built in-process on a temp dir around it.

use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode, Uri};
use symhub_core::{Spelling, SymbolKey};
use tokio::sync::Notify;

use crate::cache::fill::{Fill, FillState};
use crate::cache::resolve::{Answer, Route};
use crate::cache::{Cache, Entry, Source};
use crate::config::{Config, UpstreamConfig};
use crate::metrics::Metrics;
use crate::store::SymbolStore;
use crate::upstream::Upstreams;

/// Long enough to mean "never" in a test that is stuck.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Fake upstream

/// A point in a response body where the upstream waits until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<Notify>);

impl Gate {
    pub fn open(&self) {
        self.0.notify_one();
    }

    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

#[derive(Clone)]
pub enum Step {
    Send(Bytes),
    Sleep(Duration),
    Wait(Gate),
    /// Break the connection (the announced Content-Length is never reached).
    Break,
}

/// What the upstream answers for one path.
#[derive(Clone)]
pub enum Reply {
    Status(u16),
    /// 200 announcing `body.len()` as Content-Length, then the steps.
    Body {
        body: Bytes,
        steps: Vec<Step>,
    },
}

impl Reply {
    /// A 200 for `body` whose bytes are sent by the steps added next.
    pub fn to(body: &Bytes) -> Self {
        Reply::Body {
            body: body.clone(),
            steps: Vec::new(),
        }
    }

    /// The whole of `body`, at once.
    pub fn whole(body: &Bytes) -> Self {
        Self::to(body).send(..)
    }

    fn step(mut self, step: Step) -> Self {
        if let Reply::Body { steps, .. } = &mut self {
            steps.push(step);
        }
        self
    }

    fn body(&self) -> &Bytes {
        match self {
            Reply::Body { body, .. } => body,
            Reply::Status(_) => unreachable!("a status has no body"),
        }
    }

    pub fn send(self, range: impl RangeBounds<usize>) -> Self {
        let piece = self.body().slice(range);
        self.step(Step::Send(piece))
    }

    /// `range` in `pieces` writes with `interval` before each.
    pub fn drip(
        mut self,
        range: impl RangeBounds<usize>,
        pieces: usize,
        interval: Duration,
    ) -> Self {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let part = self.body().slice(range);
        let size = part.len().div_ceil(pieces).max(1);
        for at in (0..part.len()).step_by(size) {
            let end = (at + size).min(part.len());
            self = self
                .step(Step::Sleep(interval))
                .send(start + at..start + end);
        }
        self
    }

    pub fn wait(self, gate: &Gate) -> Self {
        self.step(Step::Wait(gate.clone()))
    }

    pub fn cut(self) -> Self {
        self.step(Step::Break)
    }
}

#[derive(Default)]
struct Upstream {
    replies: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
}

pub struct FakeUpstream {
    pub url: String,
    state: Arc<Upstream>,
    _server: tokio_util::task::AbortOnDropHandle<()>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(Upstream::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            state,
            _server: tokio_util::task::AbortOnDropHandle::new(server),
        }
    }

    /// What `key` is answered with (any other path: 404).
    pub fn reply(&self, key: &SymbolKey, reply: Reply) {
        self.state.replies.lock().unwrap().insert(path(key), reply);
    }

    /// How many times `key` was asked for.
    pub fn hits(&self, key: &SymbolKey) -> usize {
        let hits = self.state.hits.lock().unwrap();
        hits.get(&path(key)).copied().unwrap_or(0)
    }

    /// How many requests were made, for any path.
    pub fn total_hits(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }
}

fn path(key: &SymbolKey) -> String {
    format!("/{}", key.url_path(Spelling::AsRequested))
}

async fn answer(State(state): State<Arc<Upstream>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = state.replies.lock().unwrap().get(&path).cloned();
    let (body, steps) = match reply {
        None => return StatusCode::NOT_FOUND.into_response(),
        Some(Reply::Status(s)) => return StatusCode::from_u16(s).unwrap().into_response(),
        Some(Reply::Body { body, steps }) => (body, steps),
    };
    let stream = futures_util::stream::iter(steps).filter_map(|step| async move {
        match step {
            Step::Send(bytes) => Some(Ok(bytes)),
            Step::Sleep(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Step::Wait(gate) => {
                gate.wait().await;
                None
            }
            Step::Break => Some(Err(std::io::Error::other("cut by the test"))),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_LENGTH, body.len().into());
    headers.insert(
        http::header::CONTENT_TYPE,
        "application/octet-stream".parse().unwrap(),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// The cache under test

pub struct Harness {
    pub cache: Arc<Cache>,
    pub upstream: FakeUpstream,
    dir: tempfile::TempDir,
}

impl Harness {
    /// A cache on a fresh data dir, with the fake upstream as its one upstream.
    pub async fn start() -> Self {
        let upstream = FakeUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_path_buf();
        config.upstreams = vec![UpstreamConfig::new("up", &upstream.url)];
        let metrics = Arc::new(Metrics::default());
        let store = Arc::new(SymbolStore::open(dir.path()).unwrap());
        let upstreams = Arc::new(Upstreams::new(&config, metrics.clone()).unwrap());
        let cache = Cache::open(&config, store, upstreams, metrics).unwrap();
        Self {
            cache,
            upstream,
            dir,
        }
    }

    pub async fn resolve(&self, key: &SymbolKey) -> Answer {
        self.cache.resolve(key, &HeaderMap::new()).await
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Every file under the committed objects dir.
    pub fn objects(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for shard in files(&self.cache_dir().join("objects")) {
            found.extend(files(&shard));
        }
        found
    }

    /// Every file in the cache's temp dir (this process's own, under `tmp/`).
    pub fn temp_files(&self) -> Vec<PathBuf> {
        files(&self.cache.objects.tmp_dir())
    }

    /// Whether the index has a row for `key`.
    pub fn indexed(&self, key: &SymbolKey) -> bool {
        self.cache.index.get(key.normalized()).unwrap().is_some()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Reading answers

pub fn key() -> SymbolKey {
    SymbolKey::parse_path("app.pdb/0123456789ABCDEF0123456789ABCDEF1/app.pdb").unwrap()
}

/// `len` bytes with no short period, so a read at a wrong offset never matches.
pub fn payload(len: usize) -> Bytes {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The fill of an [`Answer::Streaming`] and its route; anything else fails the test.
pub fn streaming(answer: Answer) -> (Arc<Fill>, Route) {
    match answer {
        Answer::Streaming { fill, route, .. } => (fill, route),
        other => panic!("expected a fill in progress, got {}", describe(&other)),
    }
}

pub fn describe(answer: &Answer) -> String {
    match answer {
        Answer::File { route, .. } => format!("a committed file ({route:?})"),
        Answer::Streaming { route, .. } => format!("a fill in progress ({route:?})"),
        Answer::Redirect(_) => "a redirect".into(),
        Answer::NotFound { why, route, .. } => format!("not found: {why:?} ({route:?})"),
    }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// `fill.stream(start, end)`, boxed.
pub fn open(fill: &Fill, start: u64, end: Option<u64>) -> ByteStream {
    Box::pin(fill.stream(start, end))
}

/// Everything a stream yields, and how it ended: `Ok` for a clean end, or its error.
pub async fn read_to_end(mut stream: ByteStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk?);
        }
        Ok(())
    })
    .await
    .expect("the stream neither ended nor failed");
    (got, read)
}

/// Bytes `start..end` of a fill, which must end cleanly.
pub async fn read_range(fill: &Fill, start: u64, end: Option<u64>) -> Vec<u8> {
    let (got, ended) = read_to_end(open(fill, start, end)).await;
    ended.expect("the stream failed");
    got
}

/// [`read_range`] in a task of its own, reading while the test goes on.
pub fn spawn_read(fill: &Fill, start: u64, end: Option<u64>) -> tokio::task::JoinHandle<Vec<u8>> {
    let stream = open(fill, start, end);
    tokio::spawn(async move {
        let (got, ended) = read_to_end(stream).await;
        ended.expect("the stream failed");
        got
    })
}

/// At least `n` bytes of a stream, and whatever else it yields without waiting: a stream
/// that holds back its `n + 1`-th byte returns exactly `n`.
pub async fn read_until_held(stream: &mut ByteStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(PATIENCE, stream.next()).await;
        match next.expect("the stream stalled") {
            Some(chunk) => got.extend_from_slice(&chunk.expect("the stream failed")),
            None => return got,
        }
    }
    while let Ok(Some(chunk)) = tokio::time::timeout(300 * MS, stream.next()).await {
        got.extend_from_slice(&chunk.expect("the stream failed"));
    }
    got
}

/// Waits until `n` bytes of the fill are in its temp file.
pub async fn wait_written(fill: &Fill, n: u64) {
    let mut rx = fill.subscribe();
    let arrived = rx.wait_for(|s| matches!(s, FillState::Streaming(p) if p.written >= n));
    tokio::time::timeout(PATIENCE, arrived)
        .await
        .expect("the bytes never arrived")
        .expect("the fill went away");
}

/// An entry as a committed fill reports it (for fills made by hand).
pub fn entry_for(key: &SymbolKey, body: &[u8]) -> Arc<Entry> {
    Arc::new(Entry {
        key: key.normalized().to_owned(),
        size: body.len() as u64,
        sha256: sha256(body),
        last_modified: SystemTime::now(),
        upstream: "store".into(),
        path: PathBuf::new(),
        source: Source::Store,
        etag: http::HeaderValue::from_static(""),
        http_date: http::HeaderValue::from_static(""),
        last_touch: Default::default(),
    })
}
