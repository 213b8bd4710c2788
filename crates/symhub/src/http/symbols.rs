//! `GET`/`HEAD /<file>/<id>/<name>`: the SymSrv/SSQP symbol route; also `/<clientKey>` of any
//! other shape an SSQP package publishes (`/12387532`), served from the store only.
//!
//! Anything that is not a servable symbol answers 404 — never a 5xx, because symsrv.dll stops
//! probing `.pd_` and `file.ptr` after a 5xx. The `X-Cache` header says what happened:
//! `HIT`, `MISS` (this request started the download, or a store-only key was not there:
//! outcome `local-only`), `COALESCED` (it joined one), `NEGATIVE` (a remembered miss),
//! `BLOCKED` or `INVALID`.

use std::fs::File;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use symhub_core::SymbolKey;

use super::body::file_response;
use super::log::{Outcome, Reply};
use super::names;
use super::App;
use crate::auth::Denied;
use crate::cache::fill::Progress;
use crate::cache::{Answer, Entry, Fill, Missing, Redirect};

/// The route's entry point: the request is taken whole so its headers are borrowed, not
/// copied (this is the hottest path of the server).
pub async fn route(State(app): State<Arc<App>>, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    let reply = handle(app, &parts.method, &parts.uri, &parts.headers).await;
    reply.into_response()
}

/// What every download route answers before it looks at the path: 405 for a method other
/// than `GET`/`HEAD` (outcome `refused`, as the router's 405s), and with
/// `auth.require_for_downloads` a 401/403 without a valid key.
pub(super) async fn refuse_download(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Reply> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(Outcome::new("refused").reply(r));
    }
    if app.keys.require_for_downloads {
        let need = crate::auth::Scope::Download;
        if let Err(d) = app.keys.check(headers, uri.query(), need).await {
            // A wrong, revoked or expired key is a 401 here, not the API's 403: a debugger
            // (symsrv.dll, Visual Studio, dotnet-symbol) prompts again only on a 401.
            let prompt = matches!(
                d,
                Denied::Missing | Denied::Wrong | Denied::Revoked(_) | Denied::Expired(_)
            );
            let mut r = super::error::ApiError::from(d).into_response();
            if prompt {
                *r.status_mut() = StatusCode::UNAUTHORIZED;
            }
            // The challenge makes it prompt, and send the key as Basic's password.
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"symhub\", charset=\"UTF-8\""),
                );
            }
            return Some(r.into());
        }
    }
    None
}

pub async fn handle(app: Arc<App>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Reply {
    if let Some(r) = refuse_download(&app, method, uri, headers).await {
        return r;
    }
    let Some(path) = app.below_prefix(uri.path()) else {
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
    let hinted = code_hint(&key, uri.query(), headers);
    let answer = app
        .cache
        .resolve(&key, hinted.as_ref().unwrap_or(headers))
        .await;
    let head = method == Method::HEAD;
    respond(&app, &key, answer, headers, uri.query(), head).await
}

/// rust-minidump asks for a `.sym` with `?code_file=…&code_id=…`: the binary, which a `.sym`
/// made on demand from a PDB is made with (its CFI). The headers with that hint, if any.
fn code_hint(key: &SymbolKey, query: Option<&str>, headers: &HeaderMap) -> Option<HeaderMap> {
    let query = query?;
    let name = key.name().as_bytes();
    if name.len() < 4 || !name[name.len() - 4..].eq_ignore_ascii_case(b".sym") {
        return None;
    }
    let (mut file, mut id) = (None, None);
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let Ok(value) = percent_encoding::percent_decode_str(value).decode_utf8() else {
            continue;
        };
        match name {
            "code_file" => file = Some(value),
            "code_id" => id = Some(value),
            _ => {}
        }
    }
    let mut hinted = headers.clone();
    crate::cache::derive::hint_code(&mut hinted, &file?, &id?);
    Some(hinted)
}

/// The response for a resolver's answer about `key`: the file (with Range and validators),
/// the stream of a fill, a redirect, or a 404 whose `X-Cache` says why. `query` is the
/// request's, kept on a redirect to another key (a key given as `?key=` must come along).
pub(super) async fn respond(
    app: &App,
    key: &SymbolKey,
    answer: Answer,
    headers: &HeaderMap,
    query: Option<&str>,
    head: bool,
) -> Reply {
    match answer {
        Answer::File { entry, file, route } => {
            let Some(mut r) = serve_entry(&entry, file, headers, head, route.x_cache()) else {
                // Shorter than its record: damaged behind symhub's back. Forgotten, so the
                // next request fetches it again.
                app.cache.forget(&entry.key).await;
                return not_found(route.x_cache(), Outcome::new("unreadable").key(key));
            };
            if let Some(source) = route.source() {
                r.headers_mut()
                    .insert(names::X_SYMHUB_SOURCE, HeaderValue::from_static(source));
            }
            if route.filled() {
                upstream_header(&mut r, &entry.upstream);
            }
            Outcome::new(route.outcome())
                .key(key)
                .upstream(&entry.upstream)
                .reply(r)
        }
        Answer::Streaming {
            fill,
            progress,
            route,
        } => {
            let mut r = serve_streaming(&fill, &progress, headers, head, route.x_cache());
            if let Some(source) = route.source() {
                r.headers_mut()
                    .insert(names::X_SYMHUB_SOURCE, HeaderValue::from_static(source));
            }
            upstream_header(&mut r, &progress.upstream);
            Outcome::new(route.outcome())
                .key(key)
                .upstream(&progress.upstream)
                .reply(r)
        }
        Answer::Redirect(Redirect::Bucket(url)) => {
            // Bytes straight from the bucket. Only 302: dotnet-symbol follows no other.
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Outcome::new("store-redirect").key(key).reply(r)
        }
        Answer::Redirect(Redirect::Key(to)) => {
            // Tecken's code-id lookup: rust-minidump follows this to the debug-id key.
            let location = match query {
                Some(q) => format!("{}/{to}?{q}", app.path_prefix),
                None => format!("{}/{to}", app.path_prefix),
            };
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut()
                .insert(names::X_CACHE, HeaderValue::from_static("HIT"));
            Outcome::new("redirect").key(key).reply(r)
        }
        Answer::NotFound {
            why,
            route,
            failures,
        } => {
            let outcome = match (why, route) {
                (Missing::Blocked, _) => Outcome::new("blocked"),
                (Missing::Negative, _) => Outcome::new("negative"),
                (Missing::Unavailable, _) => Outcome::new("store-unavailable"),
                (Missing::LocalOnly, _) => Outcome::new("local-only"),
                (Missing::NotUpstream, r) => Outcome::new(r.map_or("miss", |r| r.outcome()))
                    .status_note("not found upstream"),
                (Missing::NotAnswered, r) => Outcome::new(r.map_or("miss", |r| r.outcome()))
                    .status_note(
                        "no upstream answered usably (failed, down or not a file); not remembered",
                    )
                    .detail(|| failures.as_deref().unwrap_or_default().to_owned()),
                (Missing::DownloadFailed, r) => {
                    Outcome::new(r.map_or("miss", |r| r.outcome())).status_note("download failed")
                }
            };
            // The ledger counts what ended in a 404 once upstreams were (or had been) asked.
            let answers = match why {
                Missing::NotUpstream | Missing::Negative => Some("not found upstream"),
                Missing::NotAnswered => Some(failures.as_deref().unwrap_or("no usable answer")),
                _ => None,
            };
            if let Some(answers) = answers.filter(|_| key.is_triple()) {
                app.ledger
                    .record(key.normalized(), key.as_str(), answers, headers);
            }
            not_found(why.x_cache(route), outcome.key(key))
        }
    }
}

pub(super) fn upstream_header(r: &mut Response, upstream: &str) {
    r.headers_mut().insert(
        names::X_SYMHUB_UPSTREAM,
        HeaderValue::from_str(upstream).unwrap_or(HeaderValue::from_static("?")),
    );
}

/// `404 not found`, with `X-Cache: <cache>`. Made by hand: axum's `(status, &str)`
/// response took twice the instructions (callgrind).
pub(super) fn not_found(cache: &'static str, outcome: Outcome) -> Reply {
    let mut r = Response::new(Body::from("not found\n"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(names::X_CACHE, HeaderValue::from_static(cache));
    outcome.reply(r)
}

fn base_headers(r: &mut Response, cache: &'static str, last_modified: &HeaderValue) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(names::X_CACHE, HeaderValue::from_static(cache));
    h.insert(header::LAST_MODIFIED, last_modified.clone());
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
        // A suffix longer than the file means all of it (RFC 9110, 14.1.2), which the
        // parser refuses; nginx sends it as a 206 too.
        Ok(Err(_)) if len > 0 && is_suffix(range) => Wanted::Part(0, len - 1),
        Ok(Err(_)) => Wanted::Unsatisfiable,
        // A malformed Range header is ignored, as RFC 9110 allows.
        Err(_) => Wanted::All,
    }
}

/// `bytes=-N` with N > 0: the last N bytes.
fn is_suffix(range: &str) -> bool {
    range
        .trim()
        .strip_prefix("bytes=-")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// 416 for a file of `len` bytes, with the `X-Cache` of the file it is about.
fn range_not_satisfiable(len: u64, cache: &'static str) -> Response {
    let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
    );
    h.insert(names::X_CACHE, HeaderValue::from_static(cache));
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

/// What the request's `If-None-Match` says of `etag`: `Some(true)` when it names it (or `*`),
/// `None` without the header.
fn none_match(headers: &HeaderMap, etag: &str) -> Option<bool> {
    let if_none_match = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    Some(
        if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag),
    )
}

/// Headers of a file response: length, type, ranges, validators, `X-Cache`, where it came
/// from, and debuginfod's two.
const FILE_HEADERS: usize = 12;

/// Serves a committed entry from its open file, with every validator. `None` when the file
/// is shorter than its record.
fn serve_entry(
    entry: &Entry,
    file: Arc<File>,
    headers: &HeaderMap,
    head: bool,
    label: &'static str,
) -> Option<Response> {
    let part = FilePart {
        file,
        offset: 0,
        len: entry.size,
        etag: entry.etag(),
    };
    let r = serve_part(part, entry, headers, head, label);
    if r.is_none() {
        tracing::error!(key = %entry.key, path = %entry.path.display(), "a stored or cached file is shorter than its record");
    }
    r
}

/// `len` bytes at `offset` of a committed entry's open file, served as a whole file with its
/// own validator: the entry itself, or one ELF section of it (debuginfod).
pub(super) struct FilePart<'a> {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
    /// A strong validator of these bytes, quoted.
    pub etag: &'a str,
}

/// A part of a committed file with Range (206/416), If-None-Match / If-Modified-Since (304),
/// ETag and Last-Modified. `None` when the file is shorter than the part.
pub(super) fn serve_part(
    part: FilePart<'_>,
    entry: &Entry,
    headers: &HeaderMap,
    head: bool,
    label: &'static str,
) -> Option<Response> {
    let etag = part.etag;
    let not_modified = match none_match(headers, etag) {
        Some(matched) => matched,
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| {
                entry.http_date() == httpdate::fmt_http_date(since) || entry.last_modified < since
            }),
    };
    let len = part.len;
    let (status, start, end) = match wanted(headers, len, Some(etag)) {
        _ if not_modified => (StatusCode::NOT_MODIFIED, 0, 0),
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e + 1),
        Wanted::Unsatisfiable => return Some(range_not_satisfiable(len, label)),
    };
    let at = part.offset;
    let mut r = file_response(part.file, at + start, at + if head { start } else { end }).ok()?;
    // Room for every header a file gets, so the map is never grown and rehashed.
    r.headers_mut().reserve(FILE_HEADERS);
    *r.status_mut() = status;
    if status != StatusCode::NOT_MODIFIED {
        set_length(&mut r, status, start, end, len);
    }
    base_headers(&mut r, label, entry.http_date_value());
    // The entry's own validator is a ready header; a part's (debuginfod) is made here.
    let etag = if etag == entry.etag() {
        Some(entry.etag_value().clone())
    } else {
        HeaderValue::from_str(etag).ok()
    };
    if let Some(v) = etag {
        r.headers_mut().insert(header::ETAG, v);
    }
    Some(r)
}

/// Serves a fill still in progress: headers now, bytes as they land in the temp file. A
/// stored file arriving from the bucket has its `ETag` already: `If-None-Match` (304) and
/// `If-Range` hold as they do for a local copy.
fn serve_streaming(
    fill: &Fill,
    p: &Progress,
    headers: &HeaderMap,
    head: bool,
    cache: &'static str,
) -> Response {
    let etag = fill.etag().and_then(|v| v.to_str().ok());
    let not_modified = etag.is_some_and(|etag| none_match(headers, etag) == Some(true));
    let (status, start, end) = match p.len.map(|len| (len, wanted(headers, len, etag))) {
        _ if not_modified => (StatusCode::NOT_MODIFIED, 0, Some(0)),
        None | Some((_, Wanted::All)) => (StatusCode::OK, 0, p.len),
        Some((_, Wanted::Part(s, e))) => (StatusCode::PARTIAL_CONTENT, s, Some(e + 1)),
        Some((len, Wanted::Unsatisfiable)) => return range_not_satisfiable(len, cache),
    };
    let mut r = if head || not_modified {
        Response::new(Body::empty())
    } else {
        let mut r = Response::new(Body::from_stream(fill.stream(start, end)));
        // For a connection that can send the bytes without copying them (`zerocopy`).
        r.extensions_mut().insert(fill.follow(start, end));
        r
    };
    r.headers_mut().reserve(FILE_HEADERS);
    *r.status_mut() = status;
    if let (Some(end), Some(len), false) = (end, p.len, not_modified) {
        set_length(&mut r, status, start, end, len);
    }
    let last_modified = httpdate::fmt_http_date(p.last_modified);
    let last_modified = HeaderValue::from_str(&last_modified).expect("an HTTP date is ASCII");
    base_headers(&mut r, cache, &last_modified);
    if let Some(etag) = fill.etag() {
        r.headers_mut().insert(header::ETAG, etag.clone());
    }
    r
}
