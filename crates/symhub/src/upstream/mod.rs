//! Upstream symbol servers: the ordered list, who is asked for what, redirects, timeouts and
//! health.
//!
//! Resolution rule: every eligible upstream is asked at once, but the answer is always the
//! first upstream *in configured order* that has the file. A lower-priority "yes" waits until
//! every higher-priority upstream has said no; once a winner is known the other requests are
//! aborted (their tasks dropped, their connections closed) instead of finishing downloads.
//!
//! Only an upstream's 404/403/410 is a "no". Timeouts, connection errors, 5xx, redirect loops
//! and HTML pages are failures: they feed health tracking and make the overall answer
//! non-definitive, so it is not remembered as a negative entry.
//!
//! Redirects are followed by hand so credentials never leave their origin: configured headers
//! and forwarded client headers are sent only to the upstream's own scheme/host/port.

pub mod encoding;
pub mod health;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::Url;
use symhub_core::{Spelling, SymbolKey};
use tokio_util::task::AbortOnDropHandle;

use crate::config::{Config, Protocol, UpstreamConfig};
use crate::metrics::Metrics;
use encoding::Encoding;
use health::{object_of, Admission, Health, TimedObjects};

pub struct Upstream {
    pub name: Arc<str>,
    base: String,
    protocol: Protocol,
    extensions: Vec<String>,
    headers: HeaderMap,
    forward: Vec<HeaderName>,
    spelling: Spelling,
    client: reqwest::Client,
    first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    max_redirects: usize,
    pub health: Health,
    /// Files it broke off mid-body lately: asked of it last.
    pub broken: TimedObjects,
    /// Files it did not answer a moment ago: not asked again at once.
    unanswered: TimedObjects,
    /// Requests, failures and latency, for `/api/status`.
    pub stats: stats::UpstreamStats,
}

/// How long a file an upstream did not answer is not asked of it again: long enough for
/// the `foo.pd_` that follows its `foo.pdb` in one lookup.
const UNANSWERED_FOR: Duration = Duration::from_secs(2);

/// One upstream's answer for one key.
enum Answer {
    Found(reqwest::Response),
    Missing,
    /// What went wrong, in a word or two (`unreachable`, `timeout`, `status 503`…).
    Failed(String),
    Skipped,
}

/// A response whose headers have arrived and whose body is still to be read.
pub struct Found {
    pub upstream: Arc<Upstream>,
    pub response: reqwest::Response,
}

pub enum Resolution {
    Found(Found),
    /// No upstream has the key. `definitive` is false when some upstream failed or was
    /// skipped, so the absence may be temporary and must not be cached; `failures` says which
    /// and how (`microsoft: unreachable`), for the request log.
    NotFound {
        definitive: bool,
        failures: Vec<String>,
    },
}

pub struct Upstreams {
    list: Vec<Arc<Upstream>>,
    /// Whether any upstream's URL depends on how the client spelled a key.
    spelling_matters: bool,
    /// Every header any upstream forwards, once.
    forwarded: Vec<HeaderName>,
    /// What the upstreams are, as configured ([`config_seed`]): the start of every
    /// [`Upstreams::wire_digest`].
    seed: u64,
    accept_html: bool,
    metrics: Arc<Metrics>,
}

impl Upstream {
    fn from_config(c: &UpstreamConfig, config: &Config) -> anyhow::Result<Self> {
        let at = || format!("upstream `{}`", c.name);
        let client = reqwest::Client::builder()
            .connect_timeout(c.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("symhub/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()
            .with_context(at)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            headers.insert(
                HeaderName::try_from(k.as_str()).with_context(at)?,
                HeaderValue::try_from(v.as_str()).with_context(at)?,
            );
        }
        let mut forward: Vec<HeaderName> = c
            .forward_headers
            .iter()
            .map(|h| HeaderName::try_from(h.as_str()))
            .collect::<Result<_, _>>()
            .with_context(at)?;
        // A debuginfod server counts the hops of a request in X-Forwarded-For to stop
        // federation loops; symhub sets it on what it forwards (`http::debuginfod`).
        if c.protocol == Protocol::Debuginfod {
            forward.push(HeaderName::from_static("x-forwarded-for"));
        }
        Ok(Self {
            name: c.name.as_str().into(),
            base: c.url.trim_end_matches('/').to_owned(),
            extensions: c.extensions.iter().map(|e| e.to_lowercase()).collect(),
            headers,
            forward,
            spelling: c.key_spelling.into(),
            protocol: c.protocol,
            client,
            first_byte_timeout: c.first_byte_timeout,
            idle_timeout: c.idle_timeout,
            max_redirects: c.max_redirects,
            health: Health::new(config.health.failure_threshold, config.health.blackout),
            broken: TimedObjects::new(config.health.blackout),
            unanswered: TimedObjects::new(UNANSWERED_FOR),
            stats: stats::UpstreamStats::default(),
        })
    }

    /// Whether this upstream's extension filter lets `key` through. A CAB name matches its
    /// plain extension (`pd_` matches a `pdb` filter).
    fn serves(&self, key: &SymbolKey, target: Option<&str>) -> bool {
        if self.path_for(key, target).is_none() {
            return false;
        }
        if self.extensions.is_empty() || self.protocol == Protocol::Debuginfod {
            return true;
        }
        let Some(ext) = key.extension() else {
            return false;
        };
        self.extensions.iter().any(|want| {
            *want == ext
                || (key.is_compressed()
                    && want.len() == ext.len()
                    && want[..want.len() - 1] == ext[..ext.len() - 1])
        })
    }

    /// The path below the base URL at which this upstream has `key`, if it can have it. A
    /// debuginfod server is asked for ELF files only, by build id: the SSQP keys
    /// `_.debug/elf-buildid-sym-<id>/_.debug` and `<name>/elf-buildid-<id>/<name>` are its
    /// `buildid/<id>/debuginfo` and `buildid/<id>/executable`. A SymSrv server is never asked
    /// for the keys only debuginfod requests make ([`crate::debuginfod::is_debuginfod_only`]).
    ///
    /// `target`: the debuginfod path of a request whose key cannot spell it (a source file's
    /// path is case-sensitive and long; its key names it by hash).
    fn path_for(&self, key: &SymbolKey, target: Option<&str>) -> Option<String> {
        match (self.protocol, target) {
            (Protocol::Debuginfod, Some(target)) => Some(target.to_owned()),
            (Protocol::Debuginfod, None) => crate::debuginfod::upstream_path(key),
            (Protocol::Symsrv, _) => {
                (!crate::debuginfod::is_debuginfod_only(key)).then(|| key.url_path(self.spelling))
            }
        }
    }

    /// The URL of `key` at this upstream (see [`Upstream::path_for`]); empty if it has none.
    /// The configured base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url_for(&self, key: &SymbolKey, target: Option<&str>) -> String {
        self.path_for(key, target)
            .map(|p| format!("{}/{p}", self.base))
            .unwrap_or_default()
    }

    /// GET with manual redirects. Returns the final response (any status) or an error text.
    async fn get(
        &self,
        key: &SymbolKey,
        target: Option<&str>,
        client_headers: &HeaderMap,
    ) -> Result<reqwest::Response, (&'static str, String)> {
        let origin = Url::parse(&self.base).map_err(|e| ("bad url", e.to_string()))?;
        let mut url =
            Url::parse(&self.url_for(key, target)).map_err(|e| ("bad url", e.to_string()))?;
        for _hop in 0..=self.max_redirects {
            let same_origin = url.origin() == origin.origin();
            let mut req = self.client.get(url.clone());
            if same_origin {
                req = req.headers(self.headers.clone());
                for name in &self.forward {
                    if let Some(v) = client_headers.get(name) {
                        req = req.header(name, v);
                    }
                }
            }
            let again = req.try_clone();
            let asked = Instant::now();
            let mut sent = tokio::time::timeout(self.first_byte_timeout, req.send()).await;
            // A kept-alive connection the upstream closed as the request went out (idle
            // timeouts of a few seconds: Node, Apache, gunicorn) ends without an answer: the
            // request goes once more, on a new connection, as curl and browsers send it
            // (break-it pass: 404s for files the upstream has, counted against its health).
            // Only for a connection closed before any answer, and within the same wait for
            // a first byte (a re-test pass: every failure was asked twice, a slow close
            // cost two waits).
            let left = self.first_byte_timeout.saturating_sub(asked.elapsed());
            if let (Ok(Err(e)), Some(again)) = (&sent, again) {
                if closed_unanswered(e) && !left.is_zero() {
                    sent = tokio::time::timeout(left, again.send()).await;
                }
            }
            let resp = sent
                .map_err(|_| {
                    let why = format!("no response headers within {:?}", self.first_byte_timeout);
                    ("timeout", why)
                })?
                .map_err(|e| {
                    let kind = match () {
                        _ if e.is_connect() => "unreachable",
                        _ if e.is_timeout() => "timeout",
                        _ => "request error",
                    };
                    (kind, format!("{e:#}"))
                })?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| {
                    (
                        "bad redirect",
                        format!("{} without a Location", resp.status()),
                    )
                })?;
            url = url.join(location).map_err(|e| {
                (
                    "bad redirect",
                    format!("bad redirect Location `{location}`: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                let why = format!("redirect to unsupported scheme `{}`", url.scheme());
                return Err(("bad redirect", why));
            }
        }
        Err((
            "bad redirect",
            format!("more than {} redirects", self.max_redirects),
        ))
    }

    async fn ask(
        &self,
        key: &SymbolKey,
        target: Option<&str>,
        client_headers: &HeaderMap,
        accept_html: bool,
        metrics: &Metrics,
    ) -> Answer {
        // Not counted in its stats: they keep the failure that was.
        if self.unanswered.has(key) {
            return Answer::Failed("no answer for this file a moment ago".into());
        }
        let started = Instant::now();
        let answer = self
            .ask_once(key, target, client_headers, accept_html, metrics)
            .await;
        if !matches!(answer, Answer::Skipped) {
            let failed = match &answer {
                Answer::Failed(kind) => Some(kind.as_str()),
                _ => None,
            };
            self.stats.record(started.elapsed(), failed);
        }
        answer
    }

    async fn ask_once(
        &self,
        key: &SymbolKey,
        target: Option<&str>,
        client_headers: &HeaderMap,
        accept_html: bool,
        metrics: &Metrics,
    ) -> Answer {
        let admission = self.health.admit();
        if admission == Admission::Skip {
            return Answer::Skipped;
        }
        // Dropped when the request is aborted by a higher-priority answer: a cancelled probe
        // must not hold the upstream in "probing" forever.
        struct ProbeGuard<'a>(&'a Health, bool);
        impl Drop for ProbeGuard<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.release_probe();
                }
            }
        }
        let _guard = ProbeGuard(&self.health, admission == Admission::Probe);
        let started = Instant::now();
        let result = self.get(key, target, client_headers).await;
        metrics.upstream_latency(&self.name, started.elapsed());
        match result {
            Err((kind, reason)) => {
                if matches!(kind, "timeout" | "unreachable") {
                    self.unanswered.note(key);
                }
                metrics.upstream_request(&self.name, "error");
                tracing::warn!(upstream = %self.name, key = %key, kind, "upstream request failed: {reason}");
                self.failure();
                Answer::Failed(kind.to_owned())
            }
            Ok(resp) => {
                let status = resp.status();
                metrics.upstream_request(&self.name, status.as_str());
                match status {
                    StatusCode::OK => {
                        let html = resp
                            .headers()
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_ascii_lowercase)
                            .is_some_and(|ct| {
                                ct.starts_with("text/html")
                                    || ct.starts_with("application/xhtml+xml")
                            });
                        if html && !accept_html {
                            tracing::warn!(upstream = %self.name, key = %key,
                                "upstream answered 200 with an HTML page; not a symbol file \
                                 (set cache.accept_html = true if that is really wanted)");
                            self.failure();
                            return Answer::Failed("HTML answer".into());
                        }
                        // Debuggers and msdia have crashed on, or given up for good over,
                        // zero-byte PDBs that symbol caches wrote: never a symbol file. Not a
                        // health failure either (the upstream works; one object is bad).
                        if resp.content_length() == Some(0) {
                            tracing::warn!(upstream = %self.name, key = %key,
                                "upstream answered 200 with an empty body; not a symbol file, \
                                 asking the next upstream");
                            return Answer::Failed("empty body".into());
                        }
                        if let Err(why) = Encoding::of(resp.headers()) {
                            tracing::warn!(upstream = %self.name, key = %key,
                                "upstream answer not usable: {why}; asking the next upstream");
                            return Answer::Failed("unusable Content-Encoding".into());
                        }
                        self.health.success();
                        Answer::Found(resp)
                    }
                    // The upstream sent us elsewhere, so it has the file: a refusal there is
                    // the blob host's (an expired signed URL, clock skew), not remembered as
                    // a miss for `negative_ttl` (break-it pass).
                    StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE
                        if self.redirected_away(&resp) =>
                    {
                        let host = resp.url().host_str().unwrap_or_default().to_owned();
                        tracing::warn!(upstream = %self.name, key = %key, %status, host,
                            "the host the upstream redirected to refused the file; not \
                             remembered as missing, asked again next time");
                        Answer::Failed(format!("status {} at {host}", status.as_u16()))
                    }
                    StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE => {
                        self.health.success();
                        Answer::Missing
                    }
                    _ => {
                        tracing::warn!(upstream = %self.name, key = %key, %status, "unexpected upstream status");
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            self.failure();
                        } else if status.is_server_error() {
                            self.failed(Some(object_of(key)));
                        }
                        Answer::Failed(format!("status {}", status.as_u16()))
                    }
                }
            }
        }
    }

    /// Whether `resp` came from another server than the upstream's own, after a redirect
    /// (another host or port; `http` to `https` on default ports is the same server).
    fn redirected_away(&self, resp: &reqwest::Response) -> bool {
        let own = Url::parse(&self.base).ok();
        let at = resp.url();
        own.is_some_and(|own| own.host_str() != at.host_str() || own.port() != at.port())
    }

    /// Records a failure of the upstream itself (also used by the cache when a body breaks
    /// off mid-stream).
    pub fn failure(&self) {
        self.failed(None)
    }

    /// Records a failure, of one object when `object` is given ([`Health::failure`]).
    fn failed(&self, object: Option<u64>) {
        if self.health.failure(object) {
            tracing::warn!(upstream = %self.name, "upstream marked down after repeated failures; it is skipped until its blackout ends");
        }
    }
}

/// Whether a request failed because its connection closed before any answer: hyper's
/// "connection closed before message completed", what a kept-alive connection the server
/// just closed gives.
fn closed_unanswered(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = err.source();
    }
    false
}

/// A digest of what decides the answers of the configured upstreams: each one's name, URL,
/// protocol, spelling, extensions and headers, in order, and `cache.negative_ttl`. Misses
/// remembered under other upstreams are not theirs: an upstream added, or moved to another
/// URL, is asked at once after a restart (break-it pass: adding the upstream that has the
/// file did nothing for `negative_ttl`), and so is every miss after `negative_ttl` changes.
/// Timeouts and redirect limits are left out: they change no answer.
fn config_seed(config: &Config) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0, 0);
    let mut text = |t: &str| {
        h.write(&(t.len() as u64).to_le_bytes());
        h.write(t.as_bytes());
    };
    for u in &config.upstreams {
        text(&u.name);
        text(&u.url);
        text(&format!("{:?} {:?}", u.protocol, u.key_spelling));
        for e in &u.extensions {
            text(e);
        }
        for (name, value) in &u.headers {
            text(name);
            text(value);
        }
        text("|");
    }
    text(&config.cache.negative_ttl.as_secs().to_string());
    h.finish()
}

impl Upstreams {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let list: Vec<Arc<Upstream>> = config
            .upstreams
            .iter()
            .map(|u| Upstream::from_config(u, config).map(Arc::new))
            .collect::<anyhow::Result<_>>()?;
        let spelling_matters = list.iter().any(|u| u.spelling != Spelling::Lowercase);
        let mut forwarded: Vec<HeaderName> = Vec::new();
        for name in list.iter().flat_map(|u| &u.forward) {
            if !forwarded.contains(name) {
                forwarded.push(name.clone());
            }
        }
        Ok(Self {
            list,
            spelling_matters,
            forwarded,
            seed: config_seed(config),
            accept_html: config.cache.accept_html,
            metrics,
        })
    }

    pub fn list(&self) -> &[Arc<Upstream>] {
        &self.list
    }

    /// What the upstreams are sent for this request, as a digest: which upstreams there are
    /// and how they are asked ([`config_seed`]), the client's spelling of
    /// the key when some upstream's URL depends on it (every spelling but `lowercase`), and
    /// the value of every client header an upstream forwards. Requests for one key with the
    /// same digest are sent the same way, so only they may share a remembered miss or a
    /// download that can end in one: symbols.nuget.org answers 403 without `SymbolChecksum`
    /// and 200 with it, and a case-sensitive store answers one client's spelling and not
    /// another's. It over-approximates (two spellings that make the same URL are kept
    /// apart), which costs at most a repeated question, never a wrong answer. Cheap: it runs
    /// on every remembered miss (SipHash, no allocation).
    pub fn wire_digest(&self, key: &SymbolKey, headers: &HeaderMap) -> u64 {
        use std::hash::Hasher;
        // SipHash-1-3 with zero keys over an explicit byte stream: the digest is stored in
        // the cache index's negative entries, so neither std's `DefaultHasher` (its
        // algorithm may change between releases) nor the byte streams of std's `Hash`
        // impls may decide it. The stream is the one those impls wrote when this was
        // pinned (`wire_digests_are_stable`), so misses remembered before stay found.
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0, 0);
        h.write(&self.seed.to_le_bytes());
        if self.spelling_matters {
            h.write(key.as_str().as_bytes());
            h.write_u8(0xff);
        }
        // Most requests carry none of the forwarded headers: one pass over the request's
        // few headers then spares a hashed lookup per forwarded name (~300 instructions
        // of a remembered 404, callgrind).
        let any = headers.keys().any(|k| self.forwarded.contains(k));
        for name in &self.forwarded {
            match any.then(|| headers.get(name)).flatten() {
                // Only its hop count matters to a debuginfod server; the addresses differ
                // for every client and must not keep their requests apart.
                Some(v) if name == "x-forwarded-for" => {
                    let hops = v.as_bytes().iter().filter(|b| **b == b',').count();
                    h.write(&(hops as u64).to_le_bytes());
                }
                Some(v) => {
                    h.write(&(v.len() as u64).to_le_bytes());
                    h.write(v.as_bytes());
                }
                None => h.write_u8(0),
            }
        }
        h.finish()
    }

    /// Asks every eligible upstream for `key` at once and returns the highest-priority answer.
    /// `target`: see [`Upstream::path_for`].
    pub async fn find(
        &self,
        key: &SymbolKey,
        target: Option<&Arc<str>>,
        client_headers: &HeaderMap,
    ) -> Resolution {
        let mut eligible: Vec<_> = self
            .list
            .iter()
            .filter(|u| u.serves(key, target.map(|t| &**t)))
            .cloned()
            .collect();
        // Configured order, but an upstream that broke this file off lately goes last.
        eligible.sort_by_key(|u| u.broken.has(key));
        let tasks: Vec<AbortOnDropHandle<Answer>> = eligible
            .iter()
            .map(|u| {
                let (u, key, target, headers, metrics) = (
                    u.clone(),
                    key.clone(),
                    target.cloned(),
                    client_headers.clone(),
                    self.metrics.clone(),
                );
                let accept_html = self.accept_html;
                AbortOnDropHandle::new(tokio::spawn(async move {
                    u.ask(&key, target.as_deref(), &headers, accept_html, &metrics)
                        .await
                }))
            })
            .collect();
        let mut failures = Vec::new();
        // Awaiting in priority order is what makes the answer deterministic; the tasks all
        // run concurrently meanwhile, and the ones left when we return are aborted on drop.
        for (task, upstream) in tasks.into_iter().zip(eligible) {
            match task
                .await
                .unwrap_or_else(|_| Answer::Failed("task failed".into()))
            {
                Answer::Found(response) => {
                    return Resolution::Found(Found { upstream, response });
                }
                Answer::Missing => {}
                Answer::Failed(kind) => failures.push(format!("{}: {kind}", upstream.name)),
                Answer::Skipped => failures.push(format!("{}: down (blackout)", upstream.name)),
            }
        }
        Resolution::NotFound {
            definitive: failures.is_empty(),
            failures,
        }
    }
}

#[cfg(test)]
mod tests;
