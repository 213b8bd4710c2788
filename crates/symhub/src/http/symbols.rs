//! `GET`/`HEAD /<file>/<id>/<name>`: the SymSrv/SSQP symbol route; also `/<clientKey>` of any
//! other shape an SSQP package publishes (`/12387532`), served from the store only.
//!
//! Anything that is not a servable symbol answers 404 — never a 5xx, because symsrv.dll stops
//! probing `.pd_` and `file.ptr` after a 5xx. The `X-Cache` header says what happened:
//! `HIT`, `MISS` (this request started the download, or a store-only key was not there:
//! outcome `local-only`), `COALESCED` (it joined one), `NEGATIVE` (a remembered miss),
//! `BLOCKED` or `INVALID`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use symhub_core::SymbolKey;

use super::body::{file_body, fill_body};
use super::log::Outcome;
use super::App;
use crate::cache::{Cache, Entry, FillState, Lookup, Source};

/// The route's entry point: the request is taken whole so its headers are borrowed, not
/// copied (this is the hottest path of the server).
pub async fn route(State(app): State<Arc<App>>, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    handle(app, &parts.method, &parts.uri, &parts.headers).await
}

pub async fn handle(app: Arc<App>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if app.keys.require_for_downloads {
        if let Err(d) = app.keys.check(headers, uri.query()) {
            return super::api::denied(d);
        }
    }
    let Some(path) = uri.path().strip_prefix(app.path_prefix.as_str()) else {
        return not_found("INVALID", Outcome::new("invalid"));
    };
    let key = match SymbolKey::parse_path(path) {
        Ok(k) => k,
        Err(symhub_core::KeyError::Bookkeeping) => {
            return not_found("INVALID", Outcome::new("bookkeeping"))
        }
        Err(e) => {
            tracing::debug!(path, "not a symbol key: {e}");
            return not_found("INVALID", Outcome::new("invalid"));
        }
    };
    if app.blocklist.is_match(key.normalized()) {
        return not_found("BLOCKED", Outcome::new("blocked").key(&key));
    }
    let head = method == Method::HEAD;
    // An entry evicted or deleted between lookup and open is looked up once more.
    for _ in 0..2 {
        let (fill, leader) = match app.cache.lookup(&key, headers).await {
            Lookup::Hit(entry) => {
                if let Some(url) = app.cache.store_redirect(&entry).await {
                    // Bytes straight from the bucket. Only 302: dotnet-symbol follows no other.
                    let mut r = StatusCode::FOUND.into_response();
                    if let Ok(v) = HeaderValue::from_str(&url) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    return Outcome::new("store-redirect").key(&key).to(r);
                }
                match serve_entry(&app.cache, &entry, headers, head, "HIT").await {
                    Some(mut r) => {
                        let what = match entry.source {
                            Source::Store => "store",
                            Source::Cache => "hit",
                        };
                        r.headers_mut().insert(
                            "x-symhub-source",
                            HeaderValue::from_static(match entry.source {
                                Source::Store => "store",
                                Source::Cache => "cache",
                            }),
                        );
                        return Outcome::new(what).key(&key).upstream(&entry.upstream).to(r);
                    }
                    None => {
                        app.cache.forget(&entry.key).await;
                        continue;
                    }
                }
            }
            Lookup::Redirect(to) => {
                // Tecken's code-id lookup: rust-minidump follows this to the debug-id key.
                let location = format!("{}/{to}", app.path_prefix);
                let mut r = StatusCode::FOUND.into_response();
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r.headers_mut()
                    .insert("x-cache", HeaderValue::from_static("HIT"));
                return Outcome::new("redirect").key(&key).to(r);
            }
            Lookup::Negative => return not_found("NEGATIVE", Outcome::new("negative").key(&key)),
            Lookup::LocalOnly => return not_found("MISS", Outcome::new("local-only").key(&key)),
            Lookup::Unavailable => {
                return not_found("UNAVAILABLE", Outcome::new("store-unavailable").key(&key))
            }
            Lookup::Fill { fill, leader } => (fill, leader),
        };
        // A stored key copied from the bucket is a hit for the client; the log tells it
        // from one served from a local copy.
        let (label, outcome) = match (fill.from_store, leader) {
            (true, true) => ("HIT", "store-fetch"),
            (true, false) => ("HIT", "store-coalesced"),
            (false, true) => ("MISS", "miss"),
            (false, false) => ("COALESCED", "coalesced"),
        };
        let outcome = Outcome::new(outcome).key(&key);
        let mut r = match fill.headers().await {
            FillState::Unavailable => {
                return not_found("UNAVAILABLE", Outcome::new("store-unavailable").key(&key))
            }
            FillState::Resolving | FillState::NotFound | FillState::Failed => {
                not_found(label, outcome.status_note("not found upstream"))
            }
            FillState::Ready(entry) => {
                match serve_entry(&app.cache, &entry, headers, head, label).await {
                    Some(r) => outcome.upstream(&entry.upstream).to(r),
                    None => not_found(label, outcome),
                }
            }
            FillState::Streaming(mut p) => {
                if p.len == Some(0) {
                    // Nothing to stream: answer once it is committed, like any other file.
                    p.done = Some(match fill.finished().await {
                        Ok(Some(entry)) => Ok(entry),
                        _ => Err(()),
                    });
                }
                let upstream = p.upstream.clone();
                let mut r = match &p.done {
                    // Already complete: serve the committed file with all validators.
                    Some(Ok(entry)) => {
                        match serve_entry(&app.cache, entry, headers, head, label).await {
                            Some(r) => r,
                            None => not_found(label, outcome.clone()),
                        }
                    }
                    Some(Err(())) => {
                        not_found(label, outcome.clone().status_note("download failed"))
                    }
                    None => serve_streaming(&fill, &p, headers, head, label),
                };
                r.headers_mut().insert(
                    "x-symhub-upstream",
                    HeaderValue::from_str(&upstream).unwrap_or(HeaderValue::from_static("?")),
                );
                outcome.upstream(&upstream).to(r)
            }
        };
        if fill.from_store && r.status().is_success() {
            r.headers_mut()
                .insert("x-symhub-source", HeaderValue::from_static("store"));
        }
        return r;
    }
    not_found("MISS", Outcome::new("miss").key(&key))
}

fn not_found(cache: &'static str, outcome: Outcome) -> Response {
    let mut r = (StatusCode::NOT_FOUND, "not found\n").into_response();
    r.headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache));
    outcome.to(r)
}

fn base_headers(r: &mut Response, cache: &'static str, last_modified: &str) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("x-cache", HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// What a `Range` header asks of a body of `len` bytes.
enum Wanted {
    All,
    Part(u64, u64),
    Unsatisfiable,
}

fn wanted(headers: &HeaderMap, len: u64, etag: Option<&str>) -> Wanted {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::All;
    };
    // If-Range with a stale validator means "send it all".
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        if etag != Some(if_range) {
            return Wanted::All;
        }
    }
    match http_range_header::parse_range_header(range).map(|r| r.validate(len)) {
        Ok(Ok(ranges)) if ranges.len() == 1 => Wanted::Part(*ranges[0].start(), *ranges[0].end()),
        // Several ranges: a plain 200 is a valid answer and keeps things simple.
        Ok(Ok(_)) => Wanted::All,
        Ok(Err(_)) => Wanted::Unsatisfiable,
        // A malformed Range header is ignored, as RFC 9110 allows.
        Err(_) => Wanted::All,
    }
}

fn range_not_satisfiable(len: u64) -> Response {
    let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    r.headers_mut().insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
    );
    r
}

/// Content-Length, and Content-Range for a 206, of the bytes `start..end` of `len`.
fn set_length(r: &mut Response, status: StatusCode, start: u64, end: u64, len: u64) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)).expect("ascii"),
        );
    }
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Serves a committed entry. `None` when its file has disappeared.
async fn serve_entry(
    cache: &Cache,
    entry: &Arc<Entry>,
    headers: &HeaderMap,
    head: bool,
    label: &'static str,
) -> Option<Response> {
    let etag = entry.etag();
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => etag_matches(inm, etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| {
                entry.http_date() == httpdate::fmt_http_date(since) || entry.last_modified < since
            }),
    };
    let len = entry.size;
    let (status, start, end) = match wanted(headers, len, Some(etag)) {
        _ if not_modified => (StatusCode::NOT_MODIFIED, 0, 0),
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e + 1),
        Wanted::Unsatisfiable => return Some(range_not_satisfiable(len)),
    };
    // Opening the file also proves it is still there (eviction may have removed it).
    let file = cache.open_entry(entry).ok()?;
    let body = file_body(file, start, if head { start } else { end }).ok()?;
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if status != StatusCode::NOT_MODIFIED {
        set_length(&mut r, status, start, end, len);
    }
    base_headers(&mut r, label, entry.http_date());
    r.headers_mut()
        .insert(header::ETAG, HeaderValue::from_str(etag).expect("hex"));
    Some(r)
}

/// Serves a fill still in progress: headers now, bytes as they land in the temp file.
fn serve_streaming(
    fill: &crate::cache::Fill,
    p: &crate::cache::fill::Progress,
    headers: &HeaderMap,
    head: bool,
    cache: &'static str,
) -> Response {
    let (status, start, end) = match p.len.map(|len| (len, wanted(headers, len, None))) {
        None | Some((_, Wanted::All)) => (StatusCode::OK, 0, p.len),
        Some((_, Wanted::Part(s, e))) => (StatusCode::PARTIAL_CONTENT, s, Some(e + 1)),
        Some((len, Wanted::Unsatisfiable)) => return range_not_satisfiable(len),
    };
    let body = if head {
        Body::empty()
    } else {
        fill_body(fill.subscribe(), start, end, fill.from_store)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let (Some(end), Some(len)) = (end, p.len) {
        set_length(&mut r, status, start, end, len);
    }
    base_headers(&mut r, cache, &httpdate::fmt_http_date(p.last_modified));
    r
}
