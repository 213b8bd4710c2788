//! `GET`/`HEAD /buildid/<id>/debuginfo | executable | section/<name> | source/<path>`:
//! elfutils' debuginfod protocol, answered by the resolver like every symbol request (see
//! [`crate::debuginfod`] for which key answers what).
//!
//! Responses carry what elfutils' clients read: `Content-Length`, `X-DEBUGINFOD-SIZE` (the
//! file's size, for progress), `X-DEBUGINFOD-FILE`, `Last-Modified`, and the ETag and Range
//! support of every hit. `HEAD` answers like `GET` without a body (elfutils' own server
//! answers 400). Anything that is not a valid request is 404 before any I/O: elfutils' server
//! says 503 there, which its client takes for "cannot do sections" and falls back on.
//!
//! Loops: a request that already came through [`MAX_HOPS`] servers (`X-Forwarded-For`
//! entries, elfutils' `--forwarded-ttl-limit`) is answered from what is here and not
//! forwarded; requests this server forwards carry one hop more.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, Uri};
use symhub_core::debuginfod::{Artifact, BuildId, DebuginfodRequest};

use super::log::{Outcome, Reply};
use super::names::{self, X_FORWARDED_FOR};
use super::symbols::{not_found, refuse_download, respond, serve_part, FilePart};
use super::App;
use crate::cache::{Answer, Fill, Sent};
use crate::debuginfod::{debuginfo, executable, section_range, source};

/// Servers a request may have crossed before this one stops forwarding it (elfutils'
/// default `--forwarded-ttl-limit`).
pub const MAX_HOPS: usize = 8;

pub async fn route(State(app): State<Arc<App>>, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    let reply = handle(app, &parts.method, &parts.uri, &parts.headers).await;
    reply.into_response()
}

/// `GET|HEAD /buildid/<id>/<artifact>`, also reached without the router (`routes::Direct`).
pub async fn handle(app: Arc<App>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Reply {
    if let Some(r) = refuse_download(&app, method, uri, headers).await {
        return r;
    }
    let path = app.below_prefix(uri.path()).unwrap_or("");
    let request = match DebuginfodRequest::parse_path(path) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(path, "not a debuginfod request: {e}");
            return not_found("INVALID", Outcome::new("invalid"));
        }
    };
    let head = method == Method::HEAD;
    let hops = forwarded_hops(headers);
    let federate = hops < MAX_HOPS;
    // What upstreams are sent: the client's headers with one hop more, spelled the same
    // for every client at this depth so that their requests still share one download.
    let forwarded = forwarded_for(hops.min(MAX_HOPS) + 1);
    let sent = Sent::forwarded(headers, forwarded);
    let id = &request.build_id;
    let (key, answer) = match &request.artifact {
        Artifact::Debuginfo | Artifact::Executable => {
            let key = match request.artifact {
                Artifact::Debuginfo => debuginfo(id),
                _ => executable(id),
            };
            let Some(key) = key else {
                return not_found("INVALID", Outcome::new("invalid"));
            };
            let target = match request.artifact {
                Artifact::Debuginfo => debuginfo_target(id),
                _ => None,
            };
            let answer = app
                .cache
                .resolve_with(&key, sent, federate, target.as_ref())
                .await;
            (key, answer)
        }
        Artifact::Source(path) => {
            let Some(key) = source(id, path) else {
                return not_found("INVALID", Outcome::new("invalid"));
            };
            let target: Arc<str> = request.url_path().into();
            let answer = app
                .cache
                .resolve_with(&key, sent, federate, Some(&target))
                .await;
            let mut r = respond(&app, &key, answer, headers, uri.query(), head).await;
            debuginfod_headers(&mut r.response, path.file_name());
            return r;
        }
        Artifact::Section(name) => {
            return section(&app, &request, name.as_str(), headers, sent, federate, head).await
        }
    };
    let mut r = respond(&app, &key, answer, headers, uri.query(), head).await;
    debuginfod_headers(&mut r.response, key.name());
    r
}

/// What debuginfod upstreams are asked for the debug file of `id` when its padded SSQP key
/// could stand for more than one id (an id of 8 to 19 bytes, or one ending in a zero byte,
/// as 1 in 256 sha1 ids do): `buildid/<id>/debuginfo`, the id as the client sent it. `None`
/// otherwise, so the other sha1 ids make no string on their hot path.
fn debuginfo_target(id: &BuildId) -> Option<Arc<str>> {
    let hides_length = (8..20).contains(&id.len_bytes()) || id.as_str().ends_with("00");
    hides_length.then(|| format!("buildid/{}/debuginfo", id.as_str()).into())
}

/// `X-Forwarded-For: symhub, symhub, …` with `n` entries (1 to `MAX_HOPS + 1`), made once:
/// every debuginfod request sends one.
fn forwarded_for(n: usize) -> &'static HeaderValue {
    static VALUES: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let values = VALUES.get_or_init(|| {
        (1..=MAX_HOPS + 1)
            .map(|n| HeaderValue::from_str(&vec!["symhub"; n].join(", ")).expect("ascii"))
            .collect()
    });
    &values[n - 1]
}

/// How many servers the request came through, from its `X-Forwarded-For` entries.
fn forwarded_hops(headers: &HeaderMap) -> usize {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|s| !s.trim().is_empty())
        .count()
}

fn debuginfod_headers(r: &mut Response, file: &str) {
    if !r.status().is_success() {
        return;
    }
    let h = r.headers_mut();
    if let Some(len) = h.get(header::CONTENT_RANGE).and_then(total_of_range) {
        h.insert(names::X_DEBUGINFOD_SIZE, HeaderValue::from(len));
    } else if let Some(len) = h.get(header::CONTENT_LENGTH).cloned() {
        h.insert(names::X_DEBUGINFOD_SIZE, len);
    }
    if let Ok(v) = HeaderValue::from_str(file) {
        h.insert(names::X_DEBUGINFOD_FILE, v);
    }
}

fn total_of_range(v: &HeaderValue) -> Option<u64> {
    v.to_str().ok()?.rsplit('/').next()?.parse().ok()
}

/// `section/<name>`: the section's bytes, from the debuginfo file if it has them with
/// contents, else from the executable, with Range and validators like every hit (the ETag
/// is the file's, qualified by the section). A file still downloading is waited for (a
/// section is found from the section headers, which may come last).
async fn section(
    app: &App,
    request: &DebuginfodRequest,
    name: &str,
    headers: &HeaderMap,
    sent: Sent<'_>,
    federate: bool,
    head: bool,
) -> Reply {
    let id = &request.build_id;
    // Upstreams are asked for the whole debug file, by the id as sent.
    let tries = [
        (debuginfo(id), debuginfo_target(id)),
        (executable(id), None),
    ];
    for (key, target) in tries {
        let Some(key) = key else { continue };
        let answer = app
            .cache
            .resolve_with(&key, sent, federate, target.as_ref())
            .await;
        let (file, entry, route) = match answer {
            Answer::File { file, entry, route } => (file, entry, route),
            Answer::Streaming { fill, route, .. } => match finished(app, &fill).await {
                Some((file, entry)) => (file, entry, route),
                None => continue,
            },
            _ => continue,
        };
        let (f, n) = (file.clone(), name.to_owned());
        let range = tokio::task::spawn_blocking(move || section_range(&f, &n))
            .await
            .ok()
            .flatten();
        let Some((offset, len)) = range else { continue };
        let etag = format!("\"{}.{name}\"", entry.etag().trim_matches('"'));
        let part = FilePart {
            file,
            offset,
            len,
            etag: &etag,
        };
        let Some(mut r) = serve_part(part, &entry, headers, head, route.x_cache()) else {
            continue;
        };
        let h = r.headers_mut();
        h.insert(names::X_DEBUGINFOD_SIZE, HeaderValue::from(len));
        if let Ok(v) = HeaderValue::from_str(name) {
            h.insert(names::X_DEBUGINFOD_FILE, v);
        }
        return Outcome::new("section").upstream(&entry.upstream).reply(r);
    }
    not_found("MISS", Outcome::new("section-missing"))
}

/// The committed file of a fill, once it has ended well.
async fn finished(
    app: &App,
    fill: &Arc<Fill>,
) -> Option<(Arc<std::fs::File>, Arc<crate::cache::Entry>)> {
    let entry = fill.finished().await.ok().flatten()?;
    let file = app.cache.open_entry(&entry).ok()?;
    Some((file, entry))
}
