//! One INFO line per request, written when the response body is finished (or dropped), so it
//! can report the bytes really sent and the full duration: client, method, path, outcome, key,
//! upstream, status, bytes, duration. The same moment feeds the request metrics. A request cut
//! before it had a response (its client went away, or the server stopped) gets its line too,
//! with nginx's status for that, 499.
//!
//! The client address is the TCP peer, or for requests from a trusted proxy (config
//! `server.trusted_proxies`) the right-most untrusted address of `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use symhub_core::SymbolKey;

use super::names::X_FORWARDED_FOR;
use super::App;
use crate::config::TrustedProxy;

/// Marks an API response with what it did (`.noted("create")`), for the log line.
pub trait Noted {
    fn noted(self, what: &'static str) -> Response;
}

impl Noted for Response {
    fn noted(self, what: &'static str) -> Response {
        Outcome::new(what).to(self)
    }
}

/// How the connection reached us; inserted by the accept loop.
#[derive(Debug, Clone)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix,
}

/// What a handler did, for the log line and the metrics.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub what: &'static str,
    pub key: Option<String>,
    pub upstream: Option<String>,
    pub note: Option<&'static str>,
    /// What the handler found worth a word in the log line (`jobs=1 frames=100 modules=20`).
    pub detail: Option<String>,
}

impl Outcome {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            ..Self::default()
        }
    }
    /// Details only the log line uses are not even formatted when it is filtered out.
    pub fn key(mut self, key: &SymbolKey) -> Self {
        if tracing::enabled!(tracing::Level::INFO) {
            self.key = Some(key.to_string());
        }
        self
    }
    pub fn upstream(mut self, upstream: &str) -> Self {
        if tracing::enabled!(tracing::Level::INFO) {
            self.upstream = Some(upstream.to_owned());
        }
        self
    }
    /// Attaches this outcome to a response, for the log line and the metrics.
    pub fn to(self, mut r: Response) -> Response {
        r.extensions_mut().insert(self);
        r
    }

    /// This outcome beside its response, for a download handler (see [`Reply`]).
    pub fn reply(self, response: Response) -> Reply {
        Reply {
            response,
            outcome: Some(self),
        }
    }

    pub fn status_note(mut self, note: &'static str) -> Self {
        self.note = Some(note);
        self
    }

    pub fn detail(mut self, detail: impl FnOnce() -> String) -> Self {
        if tracing::enabled!(tracing::Level::INFO) {
            self.detail = Some(detail());
        }
        self
    }
}

/// A download handler's answer: its response and what it did, kept apart until the request
/// log takes them. Answered without the router, the log takes both as they are; through the
/// router the outcome rides in the response's extensions ([`IntoResponse`]), which costs a
/// map and a box per request (~700 of a remembered 404's instructions, callgrind).
pub struct Reply {
    pub response: Response,
    /// `None` when the response carries its own in its extensions (an API error's, for a
    /// refused key) or has none: the log line then says only the status.
    pub outcome: Option<Outcome>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            response,
            outcome: None,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self.outcome {
            Some(o) => o.to(self.response),
            None => self.response,
        }
    }
}

fn trusted(peer: Option<IpAddr>, is_unix: bool, proxies: &[TrustedProxy]) -> bool {
    proxies.iter().any(|p| match (p, peer) {
        (TrustedProxy::Unix, _) => is_unix,
        (TrustedProxy::Net(net), Some(ip)) => net.contains(&ip),
        (TrustedProxy::Net(_), None) => false,
    })
}

/// Whether the peer is a configured trusted proxy (its forwarded headers are believed).
pub fn is_trusted(peer: Option<&Peer>, proxies: &[TrustedProxy]) -> bool {
    match peer {
        Some(Peer::Tcp(a)) => trusted(Some(a.ip()), false, proxies),
        Some(Peer::Unix) => trusted(None, true, proxies),
        None => false,
    }
}

pub fn client_address<'a>(
    peer: Option<&Peer>,
    forwarded_for: impl IntoIterator<Item = &'a http::HeaderValue>,
    proxies: &[TrustedProxy],
) -> String {
    let (ip, is_unix) = match peer {
        Some(Peer::Tcp(a)) => (Some(a.ip()), false),
        Some(Peer::Unix) => (None, true),
        None => (None, false),
    };
    let direct = ip.map_or_else(|| "unix".to_owned(), |ip| ip.to_string());
    if !trusted(ip, is_unix, proxies) {
        return direct;
    }
    let forwarded: Vec<&str> = forwarded_for
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // Walk from the nearest hop outwards; the first address we do not trust is the client.
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(Some(ip), false, proxies) => continue,
            _ => return loggable_hop(hop),
        }
    }
    forwarded.first().map_or(direct, |s| loggable_hop(s))
}

/// A forwarded hop as the log's unquoted `client=` field may show it: at most 64 bytes, and
/// anything but what addresses, ports and obfuscated names are made of (`[A-Za-z0-9.:_[]-]`)
/// turned into `_`, so a header cannot add fields of its own to the line
/// (`X-Forwarded-For: 1.1.1.1 outcome="hit"`).
fn loggable_hop(hop: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || ".:_[]-".contains(c);
    hop.chars()
        .take(64)
        .map(|c| if safe(c) { c } else { '_' })
        .collect()
}

/// What is known of a request before it is handled. Building it costs no allocation: the
/// client address and path are only worked out if the line is really logged.
pub struct RequestLog {
    /// Keeps the connection from being closed as idle until the response body is done.
    _in_flight: super::idle::InFlight,
    app: Arc<App>,
    /// What only the line needs, kept when INFO lines are written (the metrics need none
    /// of it: with `SYMHUB_LOG=warn` a request costs neither the copies nor the clock).
    seen: Option<Seen>,
    /// Set once the request has its response: its line is then the body's to write.
    answered: bool,
    /// A `HEAD`: hyper sends none of its response's body, so the line never waits for one.
    head: bool,
}

/// The status nginx logs for a request whose client closed the connection before the
/// response: not an HTTP status ever sent.
const CUT_BEFORE_RESPONSE: u16 = 499;

/// What a request's log line needs of its head, copied out of it: a head's parts share
/// hyper's read buffer, and one kept until the line is written made hyper allocate a new
/// 8 KiB buffer for the connection's next read, request after request.
struct Seen {
    started: Instant,
    method: http::Method,
    path: Box<str>,
    peer: Peer,
    forwarded_for: Vec<http::HeaderValue>,
}

impl RequestLog {
    pub fn begin<B>(
        app: &Arc<App>,
        req: &http::Request<B>,
        peer: &Peer,
        in_flight: super::idle::InFlight,
    ) -> Self {
        let seen = tracing::enabled!(tracing::Level::INFO).then(|| Seen {
            started: Instant::now(),
            method: req.method().clone(),
            path: req.uri().path().into(),
            peer: peer.clone(),
            forwarded_for: req
                .headers()
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
                .collect(),
        });
        Self {
            _in_flight: in_flight,
            app: app.clone(),
            seen,
            answered: false,
            head: req.method() == http::Method::HEAD,
        }
    }

    /// Wraps the response body so the line is written when the body is done or dropped.
    /// The outcome is the reply's, or else the one a router's handler attached.
    pub fn finish(mut self, reply: Reply) -> http::Response<LoggedBody> {
        self.answered = true;
        let Reply {
            mut response,
            outcome,
        } = reply;
        let outcome = outcome.or_else(|| response.extensions_mut().remove::<Outcome>());
        let status = response.status().as_u16();
        let expected = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        response.map(|inner| {
            // An empty body (a bare 200) is never polled, nor is any body of a HEAD: such a
            // response is whole from the start.
            let complete = self.head || inner.is_end_stream();
            let line = LogLine {
                request: self,
                expected,
                outcome,
                status,
                bytes: 0,
                complete,
            };
            LoggedBody { inner, line }
        })
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let Some(r) = &self.seen else {
            return;
        };
        let took_ms = r.took_ms();
        tracing::info!(client = %r.client(&self.app.trusted_proxies), method = %r.method,
            path = logged_path(&r.path), status = CUT_BEFORE_RESPONSE, bytes = 0u64,
            took_ms, note = "cut before its response: the client went away or the server stopped",
            "request");
    }
}

impl Seen {
    /// Hundredths of a millisecond: `took_ms=5.7`, never `5.7001029999999995`.
    fn took_ms(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0
    }

    fn client(&self, proxies: &[TrustedProxy]) -> String {
        client_address(Some(&self.peer), &self.forwarded_for, proxies)
    }
}

struct LogLine {
    request: RequestLog,
    expected: Option<u64>,
    outcome: Option<Outcome>,
    status: u16,
    bytes: u64,
    complete: bool,
}

/// Longest request path logged, in bytes: a valid key is at most `MAX_RAW_PATH_LEN` (3 KiB)
/// as sent, and a hostile path must not make a line of up to hyper's 64 KiB head.
const MAX_LOGGED_PATH: usize = 4096;

/// A request path as logged: a sym-upload v2 upload URL (`…/_upload/<upload key>/<token>`)
/// without its token, which stays valid for the session; one longer than
/// [`MAX_LOGGED_PATH`] cut there, at a character's start.
fn logged_path(path: &str) -> &str {
    let path = if path.len() > MAX_LOGGED_PATH {
        let end = (0..=MAX_LOGGED_PATH)
            .rev()
            .find(|&i| path.is_char_boundary(i))
            .unwrap_or(0);
        &path[..end]
    } else {
        path
    };
    match path.find("/_upload/") {
        Some(at) => {
            let after = at + "/_upload/".len();
            path[after..]
                .find('/')
                .map_or(path, |slash| &path[..after + slash + 1])
        }
        None => path,
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let app = &self.request.app;
        if let Some(o) = &self.outcome {
            app.metrics.request(o.what, self.bytes);
        }
        let Some(r) = &self.request.seen else {
            return;
        };
        let took_ms = r.took_ms();
        let client = r.client(&app.trusted_proxies);
        let path = logged_path(&r.path);
        let Some(o) = &self.outcome else {
            tracing::info!(client = %client, method = %r.method, path,
                status = self.status, bytes = self.bytes, took_ms, "request");
            return;
        };
        let body = if self.complete { "complete" } else { "cut" };
        tracing::info!(
            client = %client,
            method = %r.method,
            outcome = o.what,
            // An API route's outcome has no key: its path says what was asked.
            key = o.key.as_deref().unwrap_or(path),
            upstream = o.upstream.as_deref().unwrap_or("-"),
            status = self.status,
            bytes = self.bytes,
            body,
            took_ms,
            note = o.note.unwrap_or(""),
            detail = o.detail.as_deref().unwrap_or(""),
            "symbol"
        );
    }
}

pub struct LoggedBody {
    inner: Body,
    line: LogLine,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.line.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.line.complete = true,
            _ => {}
        }
        // hyper stops polling once a sized body has delivered its length.
        if self.inner.is_end_stream() || self.line.expected == Some(self.line.bytes) {
            self.line.complete = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let proxies = vec![
            TrustedProxy::Net("10.0.0.0/8".parse().unwrap()),
            TrustedProxy::Unix,
        ];
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        let proxy = Peer::Tcp("10.0.0.1:1".parse().unwrap());
        let stranger = Peer::Tcp("198.51.100.7:1".parse().unwrap());
        assert_eq!(
            client_address(Some(&proxy), h.get_all(X_FORWARDED_FOR), &proxies),
            "203.0.113.9"
        );
        assert_eq!(
            client_address(Some(&Peer::Unix), h.get_all(X_FORWARDED_FOR), &proxies),
            "203.0.113.9"
        );
        assert_eq!(
            client_address(Some(&stranger), h.get_all(X_FORWARDED_FOR), &proxies),
            "198.51.100.7"
        );
        assert_eq!(client_address(Some(&proxy), [], &proxies), "10.0.0.1");
        // A hop that is not an address cannot add fields to the line.
        for (forwarded, logged) in [
            (
                "1.1.1.1 outcome=\"hit\" method=POST",
                "1.1.1.1_outcome__hit__method_POST",
            ),
            ("[2001:db8::1]:4711, _hidden", "_hidden"),
        ] {
            h.insert("x-forwarded-for", forwarded.parse().unwrap());
            let client = client_address(Some(&proxy), h.get_all(X_FORWARDED_FOR), &proxies);
            assert_eq!(client, logged);
        }
    }

    #[test]
    fn upload_tokens_stay_out_of_the_log() {
        assert_eq!(logged_path("/_upload/abc/s3cr3t"), "/_upload/abc/");
        assert_eq!(logged_path("/sym/_upload/abc/s3cr3t"), "/sym/_upload/abc/");
        assert_eq!(logged_path("/_upload/abc"), "/_upload/abc");
        assert_eq!(logged_path("/a.pdb/1/a.pdb"), "/a.pdb/1/a.pdb");
        let hostile = format!("/{}", "a".repeat(60_000));
        assert_eq!(logged_path(&hostile).len(), MAX_LOGGED_PATH);
        let wide = format!("/{}", "é".repeat(30_000));
        assert_eq!(logged_path(&wide).len(), MAX_LOGGED_PATH - 1);
    }
}
