//! Symbolication routes:
//! - `POST /symbolicate/v5`: Eliot's API (see [`crate::symbolicate::v5`]). Errors carry
//!   Eliot's `title` beside symhub's `error`/`message`; CORS is open, as Eliot's is, since
//!   the Firefox Profiler calls it from the browser.
//! - `POST /api/minidump`: a minidump as the multipart part `upload_file_minidump` (Breakpad,
//!   Crashpad, Socorro's collector; gzip-encoded bodies as Crashpad sends them), or as the
//!   raw body; the answer is what `minidump-stackwalk --json` prints (`?pretty=1`:
//!   `--pretty`).
//!
//! With `auth.require_for_downloads` both need a key, like the symbol files they read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::log::{Noted, Outcome};
use super::{json, App};
use crate::symbolicate::minidump::{stackwalk, StackwalkError};
use crate::symbolicate::v5;

/// The part crash reporters put the dump in (Breakpad, Crashpad, Socorro's collector).
const DUMP_FIELD: &str = "upload_file_minidump";

/// An API error with Eliot's `title` beside symhub's fields.
fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    let mut r = json::reply(
        status,
        &json!({ "error": code, "message": message, "title": message }),
    );
    cors(&mut r);
    r.noted("refused")
}

fn cors(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, Auth-Token"),
    );
}

async fn denied(app: &App, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    if !app.keys.require_for_downloads {
        return None;
    }
    let e = app
        .keys
        .check(headers, uri.query(), crate::auth::Scope::Download)
        .await
        .err()?;
    // With CORS headers, so a browser shows the 401 rather than a CORS failure.
    let mut r = super::error::ApiError::from(e).into_response();
    cors(&mut r);
    Some(r)
}

/// `OPTIONS /symbolicate/v5`: the browser's preflight.
pub async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(&mut r);
    r
}

fn timed_out(timeout: Duration) -> Response {
    refuse(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request took longer than symbolication.request_timeout ({})",
            humantime::format_duration(timeout)
        ),
    )
}

pub async fn v5(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Some(r) = denied(&app, req.headers(), req.uri()).await {
        return r;
    }
    let timeout = app.symbolicator.config.request_timeout;
    // The whole request, its body included, within the timeout and a permit.
    tokio::time::timeout(timeout, v5_within(&app, req))
        .await
        .unwrap_or_else(|_| timed_out(timeout))
}

async fn v5_within(app: &App, req: Request) -> Response {
    let s = &app.symbolicator;
    let Ok(_permit) = s.permits.acquire().await else {
        return timed_out(s.config.request_timeout);
    };
    let limit = s.config.max_request_size.as_u64() as usize;
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than symbolication.max_request_size ({limit} bytes) or broke off"),
            )
        }
    };
    let jobs = match v5::parse(&body, &s.config) {
        Ok(jobs) => jobs,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            return refuse(status, e.code, e.message);
        }
    };
    let answer = v5::symbolicate(s, &jobs).await;
    let mut r = json::reply(StatusCode::OK, &answer);
    cors(&mut r);
    Outcome::new("symbolicated")
        .detail(|| {
            let frames: usize = jobs.iter().flat_map(|j| &j.stacks).map(Vec::len).sum();
            let found = answer.results.iter().flat_map(|r| r.found_modules.values());
            let (looked, hit) = found.fold((0, 0), |(l, h), v| match v {
                Some(true) => (l + 1, h + 1),
                Some(false) => (l + 1, h),
                None => (l, h),
            });
            format!(
                "jobs={} frames={frames} modules_found={hit}/{looked}",
                jobs.len()
            )
        })
        .to(r)
}

pub async fn minidump(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Some(r) = denied(&app, req.headers(), req.uri()).await {
        return r;
    }
    let timeout = app.symbolicator.config.request_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::time::timeout_at(deadline, minidump_within(&app, req, deadline))
        .await
        .unwrap_or_else(|_| timed_out(timeout))
}

async fn minidump_within(app: &App, req: Request, deadline: tokio::time::Instant) -> Response {
    let pretty = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "pretty=1" || p == "pretty=true"));
    let s = &app.symbolicator;
    let Ok(_permit) = s.permits.acquire().await else {
        return timed_out(s.config.request_timeout);
    };
    let max = s.config.max_minidump_size.as_u64();
    let dir = app.cache.store().tmp_dir();
    let dump = match receive_dump(req, &dir, max).await {
        Ok(d) => d,
        Err((status, code, message)) => return refuse(status, code, message),
    };
    // The walk runs on a thread of its own: it is told the time left, not cancelled.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    match stackwalk(s.clone(), dump.path().to_owned(), pretty, left).await {
        Ok(out) => {
            let mut r = (StatusCode::OK, out).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.noted("stackwalked")
        }
        Err(e) => {
            let (status, code) = match &e {
                StackwalkError::Unreadable(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "not_a_minidump")
                }
                StackwalkError::Unprocessable(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_minidump")
                }
                StackwalkError::Timeout(_) => return timed_out(s.config.request_timeout),
                StackwalkError::Internal(m) => {
                    tracing::error!("minidump processing failed: {m}");
                    return json::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the server could not process the minidump; see its log",
                    )
                    .noted("error");
                }
            };
            refuse(status, code, e.to_string())
        }
    }
}

type Refusal = (StatusCode, &'static str, String);

/// The dump of a request, in a temp file of the data directory: the multipart part
/// [`DUMP_FIELD`], or the whole body when it is not multipart. Bounded by `max` bytes, after
/// decoding a `Content-Encoding: gzip` body.
async fn receive_dump(
    req: Request,
    dir: &std::path::Path,
    max: u64,
) -> Result<tempfile::NamedTempFile, Refusal> {
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes())
    {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => true,
        Some(v) if v.eq_ignore_ascii_case(b"identity") => false,
        Some(v) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding {} is not supported; send gzip or nothing",
                    String::from_utf8_lossy(v)
                ),
            ))
        }
    };
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/"));
    let (mut parts, body) = req.into_parts();
    let body = if gzip {
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        let reader = tokio_util::io::StreamReader::new(
            body.into_data_stream().map_err(std::io::Error::other),
        );
        let decoded = async_compression::tokio::bufread::GzipDecoder::new(reader);
        Body::from_stream(tokio_util::io::ReaderStream::new(decoded))
    } else {
        body
    };
    // The whole body, decoded, is bounded too: the other parts of a form (annotations,
    // attachments) are read past, and a gzip bomb may hide in any of them.
    let over = Arc::new(AtomicBool::new(false));
    let body = bounded(body, max + FORM_ALLOWANCE, over.clone());
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the minidump is larger than symbolication.max_minidump_size ({max} bytes)"),
        )
    };
    let broken = |code, text: String| match over.load(Ordering::Relaxed) {
        true => too_large(),
        false => (StatusCode::BAD_REQUEST, code, text),
    };
    // A copy that failed because the whole body passed its bound says so.
    let over_or = |e: Refusal| {
        if over.load(Ordering::Relaxed) {
            too_large()
        } else {
            e
        }
    };
    let file = tempfile::NamedTempFile::new_in(dir).map_err(internal)?;
    // Written through the runtime's file I/O, not blocking a request thread.
    let mut out = tokio::fs::File::from_std(file.as_file().try_clone().map_err(internal)?);
    if !multipart {
        copy_bounded(body.into_data_stream(), &mut out, max)
            .await
            .map_err(over_or)?;
        return Ok(file);
    }
    let mut form = Multipart::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|e| broken("bad_multipart", e.body_text()))?;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| broken("bad_multipart", e.body_text()))?;
        let Some(field) = field else {
            return Err((
                StatusCode::BAD_REQUEST,
                "no_minidump",
                format!("the form has no `{DUMP_FIELD}` part (the minidump)"),
            ));
        };
        if field.name() == Some(DUMP_FIELD) {
            copy_bounded(field, &mut out, max).await.map_err(over_or)?;
            return Ok(file);
        }
        // Other parts (annotations, attachments) are read past.
    }
}

/// What a form may hold besides the dump (annotations, small attachments).
const FORM_ALLOWANCE: u64 = 1 << 20;

/// `body`, ending in an error after `max` bytes, with `over` set.
fn bounded(body: Body, max: u64, over: Arc<AtomicBool>) -> Body {
    let seen = AtomicU64::new(0);
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        let len = chunk.len() as u64;
        if seen.fetch_add(len, Ordering::Relaxed) + len > max {
            over.store(true, Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other(
                "body over its bound",
            )));
        }
        Ok(chunk)
    }))
}

async fn copy_bounded<E: std::fmt::Display>(
    mut body: impl Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    file: &mut tokio::fs::File,
    max: u64,
) -> Result<(), Refusal> {
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                "broken_body",
                format!("the body broke off or is not valid gzip: {e}"),
            )
        })?;
        written += chunk.len() as u64;
        if written > max {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the minidump is larger than symbolication.max_minidump_size ({max} bytes)"
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    if written == 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            "no_minidump",
            "the minidump is empty".into(),
        ));
    }
    // tokio's file finishes its last write in the background: done before the dump is read.
    file.flush().await.map_err(internal)
}

fn internal(e: std::io::Error) -> Refusal {
    tracing::error!("cannot keep a received minidump: {e}");
    (
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
        "the server could not keep the minidump; see its log".into(),
    )
}
