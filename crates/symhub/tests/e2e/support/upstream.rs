//! The fake upstream: a real HTTP server on loopback whose routes serve bytes (at once,
//! slowly, in pieces, cut short, chunked, encoded), answer a status, redirect, require a
//! header or follow a sequence, and which counts the requests it was sent and the bodies
//! it finished or saw abandoned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

#[derive(Clone)]
pub enum Behavior {
    /// Serve bytes, optionally slowly or cut short.
    Serve(Serve),
    Status(u16),
    /// 302 to this absolute URL.
    Redirect(String),
    /// 403 unless the request carries this header (symbols.nuget.org and `SymbolChecksum`).
    RequireHeader(&'static str, Box<Behavior>),
    /// The n-th request gets the n-th behavior; the last one answers every later request.
    Sequence(Vec<Behavior>),
}

#[derive(Clone, Default)]
pub struct Serve {
    pub body: Bytes,
    pub delay_headers: Duration,
    /// Send the body in this many pieces with `interval` between them.
    pub pieces: usize,
    pub interval: Duration,
    /// Announce the full length but stop after this many bytes and break the connection.
    pub cut_after: Option<usize>,
    pub content_type: Option<&'static str>,
    /// Sent as `Content-Encoding` (the body is sent as given: encode it yourself).
    pub content_encoding: Option<&'static str>,
    /// No `Content-Length`: the body goes out chunked.
    pub chunked: bool,
}

impl Serve {
    pub fn bytes(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            pieces: 1,
            ..Self::default()
        }
    }
    pub fn drip(mut self, pieces: usize, interval: Duration) -> Self {
        self.pieces = pieces.max(1);
        self.interval = interval;
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_headers = d;
        self
    }
    pub fn cut_after(mut self, n: usize) -> Self {
        self.cut_after = Some(n);
        self
    }
    pub fn content_type(mut self, ct: &'static str) -> Self {
        self.content_type = Some(ct);
        self
    }
    pub fn content_encoding(mut self, ce: &'static str) -> Self {
        self.content_encoding = Some(ce);
        self
    }
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

#[derive(Default)]
struct UpstreamState {
    routes: Mutex<HashMap<String, Behavior>>,
    hits: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<(String, HeaderMap)>>,
    /// When the body of a path was last sent in full.
    finished: Mutex<HashMap<String, Instant>>,
    /// Bodies dropped before they were sent in full (the client went away).
    abandoned: Mutex<HashMap<String, usize>>,
}

/// Lives inside a response body stream; notices when the stream is dropped unfinished.
struct AbandonProbe {
    state: Arc<UpstreamState>,
    path: String,
    total: usize,
    sent: usize,
}

impl Drop for AbandonProbe {
    fn drop(&mut self) {
        if self.sent < self.total {
            *self
                .state
                .abandoned
                .lock()
                .unwrap()
                .entry(self.path.clone())
                .or_default() += 1;
        }
    }
}

pub struct FakeUpstream {
    pub url: String,
    state: Arc<UpstreamState>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(upstream_handler)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    /// `path` is the exact request path, e.g. `/foo.pdb/ABC1/foo.pdb`.
    pub fn route(&self, path: &str, b: Behavior) {
        self.state.routes.lock().unwrap().insert(path.to_owned(), b);
    }

    pub fn serve(&self, path: &str, body: impl Into<Bytes>) {
        self.route(path, Behavior::Serve(Serve::bytes(body)));
    }

    pub fn remove(&self, path: &str) {
        self.state.routes.lock().unwrap().remove(path);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }

    pub fn requests(&self) -> Vec<(String, HeaderMap)> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn abandoned(&self, path: &str) -> usize {
        self.state
            .abandoned
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn finished(&self, path: &str) -> Option<Instant> {
        self.state.finished.lock().unwrap().get(path).copied()
    }
}

async fn upstream_handler(
    State(state): State<Arc<UpstreamState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let nth = {
        let mut hits = state.hits.lock().unwrap();
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n - 1
    };
    state
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), headers.clone()));
    let mut behavior = state.routes.lock().unwrap().get(&path).cloned();
    loop {
        behavior = match behavior {
            Some(Behavior::Sequence(list)) => list.get(nth.min(list.len() - 1)).cloned(),
            Some(Behavior::RequireHeader(name, inner)) => match headers.contains_key(name) {
                true => Some(*inner),
                false => Some(Behavior::Status(403)),
            },
            other => break respond(state, path, other).await,
        };
    }
}

async fn respond(state: Arc<UpstreamState>, path: String, behavior: Option<Behavior>) -> Response {
    match behavior {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Behavior::Sequence(_) | Behavior::RequireHeader(..)) => unreachable!("unfolded"),
        Some(Behavior::Status(s)) => StatusCode::from_u16(s).unwrap().into_response(),
        Some(Behavior::Redirect(to)) => {
            (StatusCode::FOUND, [(http::header::LOCATION, to)]).into_response()
        }
        Some(Behavior::Serve(s)) => {
            tokio::time::sleep(s.delay_headers).await;
            let total = s.body.len();
            let limit = s.cut_after.unwrap_or(total).min(total);
            let piece = total.div_ceil(s.pieces).max(1);
            let body = s.body.clone();
            let cut = s.cut_after.is_some();
            let interval = s.interval;
            let st = state.clone();
            let probe = AbandonProbe {
                state: state.clone(),
                path: path.clone(),
                total,
                sent: 0,
            };
            let stream = futures_util::stream::unfold((0usize, probe), move |(sent, mut probe)| {
                let body = body.clone();
                let st = st.clone();
                let path = path.clone();
                async move {
                    probe.sent = sent;
                    if sent >= limit {
                        if cut {
                            // Let the headers and the first bytes reach the client first.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            probe.sent = usize::MAX;
                            return Some((
                                Err(std::io::Error::other("cut by the test")),
                                (usize::MAX, probe),
                            ));
                        }
                        st.finished.lock().unwrap().insert(path, Instant::now());
                        return None;
                    }
                    if sent > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    let end = (sent + piece).min(limit);
                    if end == total {
                        // hyper stops polling once Content-Length bytes went out.
                        st.finished.lock().unwrap().insert(path, Instant::now());
                    }
                    probe.sent = end;
                    Some((Ok::<_, std::io::Error>(body.slice(sent..end)), (end, probe)))
                }
            });
            let mut r = Response::new(Body::from_stream(stream));
            if !s.chunked {
                r.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, total.into());
            }
            if let Some(ce) = s.content_encoding {
                r.headers_mut()
                    .insert(http::header::CONTENT_ENCODING, ce.parse().unwrap());
            }
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                s.content_type
                    .unwrap_or("application/octet-stream")
                    .parse()
                    .unwrap(),
            );
            r
        }
    }
}
