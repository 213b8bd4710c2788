//! Test support: the real `symhub` binary on a loopback port (or UNIX socket), and fake
//! upstreams that are real HTTP servers able to delay, drip, cut, redirect, answer any
//! status, and count what they were asked.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

// ---------------------------------------------------------------------------------------------
// Fake upstream

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

// ---------------------------------------------------------------------------------------------
// The real binary

pub struct Symhub {
    pub url: String,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub listen: String,
    child: Option<Child>,
    pub stderr_path: PathBuf,
    /// Extra environment of the process (credentials from the environment).
    pub env: Vec<(String, String)>,
    _dir: Arc<tempfile::TempDir>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_symhub")
}

/// A server started with exactly these flags (for tests of the flags themselves). Returns
/// the child and the URL from its `listening` line; the caller kills it.
pub fn spawn_serve(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("symhub: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

impl Symhub {
    /// Starts symhub with `config` (TOML without `[server] listen` and `[storage]`, which the
    /// harness sets) on a fresh data dir.
    pub fn start(config: &str) -> Self {
        Self::start_on(config, "127.0.0.1:0")
    }

    pub fn start_on(config: &str, listen: &str) -> Self {
        Self::start_full(config, listen, None)
    }

    /// With the data dir somewhere of the test's choosing (a small filesystem).
    pub fn start_in(config: &str, data_dir: PathBuf) -> Self {
        Self::start_full(config, "127.0.0.1:0", Some(data_dir))
    }

    /// With extra environment variables.
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full_env(config, "127.0.0.1:0", None, env)
    }

    fn start_full(config: &str, listen: &str, data_dir: Option<PathBuf>) -> Self {
        Self::start_full_env(config, listen, data_dir, &[])
    }

    fn start_full_env(
        config: &str,
        listen: &str,
        data_dir: Option<PathBuf>,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let config_path = dir.path().join("symhub.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut s = Self {
            url: String::new(),
            data_dir,
            config_path,
            listen: listen.to_owned(),
            child: None,
            stderr_path: dir.path().join("stderr.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .unwrap();
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("symhub did not start: {}", self.stderr()));
        let addr = line
            .strip_prefix("symhub: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.url = addr.to_owned();
        self.child = Some(child);
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops (SIGKILL) and starts again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        if let Some(addr) = self.url.strip_prefix("http://") {
            self.listen = addr.to_owned();
        }
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        None
    }

    /// GET once every download in progress has committed, so a test sees settled state:
    /// a response ends when its last byte is sent, a moment before the commit (fsync,
    /// rename) that makes the next request a HIT. Concurrency tests use `client()` directly.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.settle().await;
        self.get_now(path).await
    }

    pub async fn get_now(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let text = self.get_now("/metrics").await.text().await.unwrap();
            let busy = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("symhub_fills_in_flight ")?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0);
            if busy == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Opens a sym-upload-v2 session with `key` and returns its upload URL.
    pub async fn create_upload(&self, key: &str) -> String {
        let r = client()
            .post(format!("{}/v1/uploads:create?key={key}", self.url))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        v["uploadUrl"].as_str().unwrap().to_owned()
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_slice(&self.get(path).await.bytes().await.unwrap()).unwrap()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        self.settle().await;
        let text = self.get_now("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Every regular file below the data dir, relative.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(&self.data_dir)
            .into_iter()
            .map(|p| p.strip_prefix(&self.data_dir).unwrap().to_path_buf())
            .collect()
    }

    /// The cached objects (bodies) on disk, with their sizes.
    pub fn objects(&self) -> Vec<(PathBuf, u64)> {
        walk(&self.data_dir.join("cache/objects"))
            .into_iter()
            // An object may be evicted between the listing and the stat.
            .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
            .collect()
    }
}

impl Drop for Symhub {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A config with the given upstreams, in order: `(name, url, extra TOML lines)`.
pub fn config_with(upstreams: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = String::from(extra);
    s.push('\n');
    for (name, url, more) in upstreams {
        s.push_str(&format!(
            "[[upstream]]\nname = \"{name}\"\nurl = \"{url}\"\n{more}\n"
        ));
    }
    s
}

/// Deterministic pseudo-random bytes (no two tests share content by accident).
pub fn data(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Sends raw bytes as a request over TCP and returns the status line and all that came back.
pub fn raw_request(base_url: &str, request: &[u8]) -> String {
    let addr = base_url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET <path>` sent byte for byte, with no client-side normalization.
pub fn raw_get(base_url: &str, path: &[u8]) -> String {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw_request(base_url, &req)
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over one keep-alive connection, byte for byte as a real client sends it

pub struct RawConn {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawConn {
    pub fn open(base_url: &str) -> Self {
        let addr = base_url.strip_prefix("http://").unwrap();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, request: &[u8]) -> RawResponse {
        self.stream.write_all(request).unwrap();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let lower = head.to_ascii_lowercase();
        let body = if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap())
        {
            while self.buf.len() < len {
                self.fill();
            }
            self.buf.drain(..len).collect()
        } else if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill();
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill();
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            Vec::new()
        };
        RawResponse { status, head, body }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request body sent with `Transfer-Encoding: chunked`, as libcurl sends a PUT of a file.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(16 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// `[auth]` with one key, and the key.
pub fn auth_config(key: &str) -> String {
    use sha2::Digest;
    format!(
        "[auth]\napi_keys = [\"sha256:{}\"]\n",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// Real symbol files and minidumps kept in the repo (`tests/fixtures`, with their licences),
/// so a clone anywhere tests on its own.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}
