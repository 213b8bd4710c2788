//! The upload API (Breakpad sym-upload v1 and v2) and the symbol listing. Handlers only
//! translate HTTP into calls on [`crate::upload::Uploads`] and answers into JSON (with
//! [`super::json`], whose spacing the real `sym_upload` client depends on).
//!
//! Routes (all under `server.path_prefix`; v2 routes with and without `/v1`):
//! - `GET  [/v1]/symbols/<debug_file>/<debug_id>:checkStatus`
//! - `POST [/v1]/uploads:create`
//! - `PUT  /_upload/<upload key>/<token>` (the upload URL; the token is the credential)
//! - `POST [/v1]/uploads/<upload key>:complete`
//! - `POST <upload.v1_path>` (multipart, sym-upload-v1)
//!
//! `:complete` and v1 take `?transaction=<id>`: the upload joins that upload transaction
//! ([`super::transactions`]).
//! - `GET  /api/symbols?prefix=…&after=…&limit=…`

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::TryStreamExt;
use http::{header, HeaderMap, Method, StatusCode, Uri};
use serde_json::json;

use super::error::{ApiError, RequireKey};
use super::log::{is_trusted, Noted, Peer};
use super::{json, symbols, App};
use crate::store::symbols::Committed;
use crate::upload::{Claim, UploadError};

type Answer = Result<Response, ApiError>;

pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `GET [/v1]/symbols/<debug_file>/<id>:checkStatus`. A path of this shape without the
/// action suffix is an ordinary symbol path (a debug file may well be named `symbols`), so
/// the key is checked only once the suffix says it is the API.
pub async fn check_status(
    State(app): State<Arc<App>>,
    Path((debug_file, id_action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let Some(debug_id) = id_action.strip_suffix(":checkStatus") else {
        return Ok(symbols::handle(app, &method, &uri, &headers)
            .await
            .into_response());
    };
    app.keys
        .check(&headers, query.as_deref(), crate::auth::Scope::Upload)
        .await?;
    let found = app.uploads.check_status(&debug_file, debug_id).await?;
    let status = if found { "FOUND" } else { "MISSING" };
    Ok(json::reply(StatusCode::OK, &json!({ "status": status })).noted("check"))
}

/// The base URL clients reach this server at, for upload URLs.
fn public_base(app: &App, headers: &HeaderMap, peer: Option<&Peer>) -> String {
    if !app.public_url.is_empty() {
        return app.public_url.trim_end_matches('/').to_owned();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
    };
    let trusted = is_trusted(peer, &app.trusted_proxies);
    let scheme = trusted
        .then(|| header("x-forwarded-proto"))
        .flatten()
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| "http".into());
    let host = trusted
        .then(|| header("x-forwarded-host"))
        .flatten()
        .or_else(|| header("host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}{}", app.path_prefix)
}

/// `POST [/v1]/uploads:create`.
pub async fn create(
    _: RequireKey,
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Answer {
    let (upload_key, token) = app.uploads.create_session().await?;
    let base = public_base(&app, &headers, peer.as_deref());
    let url = format!("{base}/_upload/{upload_key}/{token}");
    // camelCase is what the real client parses; snake_case is what the protocol document
    // shows.
    Ok(json::reply(
        StatusCode::OK,
        &json!({
            "uploadUrl": url,
            "uploadKey": upload_key,
            "upload_url": url,
            "upload_key": upload_key,
        }),
    )
    .noted("create"))
}

/// `PUT /_upload/<upload key>/<token>`: the body, usually chunked. Success is exactly 200
/// (sym_upload fails on 201 and 204).
pub async fn put(
    State(app): State<Arc<App>>,
    Path((upload_key, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let declared = declared_length(&headers);
    app.uploads
        .put(&upload_key, &token, body.into_data_stream(), declared)
        .await?;
    Ok((StatusCode::OK, "").into_response().noted("put"))
}

/// `POST [/v1]/uploads/<upload key>:complete`, with the lenient body.
pub async fn complete(
    key: RequireKey,
    State(app): State<Arc<App>>,
    Path(key_action): Path<String>,
    RawQuery(query): RawQuery,
    body: String,
) -> Answer {
    let Some(upload_key) = key_action.strip_suffix(":complete") else {
        return Err(ApiError::NotFound(
            "not_found",
            "expected uploads/<uploadKey>:complete".into(),
        ));
    };
    let request = symhub_core::breakpad::parse_complete(&body)
        .map_err(|e| UploadError::BadRequest(e.to_string()))?;
    let claim = Claim {
        upload_type: request.upload_type,
        debug_file: request.debug_file,
        debug_id: request.debug_id,
    };
    let transaction = super::transactions::transaction_param(query.as_deref())?;
    let c = app
        .uploads
        .complete_in(upload_key, claim, key.origin(transaction))
        .await?;
    Ok(json::reply(StatusCode::OK, &json!({ "result": result_name(c) })).noted("complete"))
}

fn result_name(c: Committed) -> &'static str {
    match c {
        Committed::Stored => "OK",
        Committed::Duplicate => "DUPLICATE_DATA",
    }
}

/// Text fields of a v1 upload are short; anything longer is not a real client.
const MAX_FIELD: usize = 4096;

/// `POST <upload.v1_path>`: sym-upload-v1 multipart. Answers 200 `OK` (the client reports
/// failure on any other status).
pub async fn v1(
    key: RequireKey,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Answer {
    let transaction = super::transactions::transaction_param(query.as_deref())?;
    let mut multipart =
        multipart.map_err(|e| UploadError::BadRequest(format!("not a multipart upload: {e}")))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut received = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| UploadError::Body(e.to_string()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "symbol_file" {
            let stream = field.map_err(|e| e.to_string());
            received = Some(app.uploads.receive(stream, None).await?);
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| UploadError::Body(e.to_string()))?;
        if text.len() > MAX_FIELD {
            return Err(UploadError::BadRequest(format!("field `{name}` is too long")).into());
        }
        fields.insert(name, text);
    }
    let Some(received) = received else {
        return Err(UploadError::BadRequest("no `symbol_file` part".into()).into());
    };
    let (Some(debug_file), Some(debug_id)) = (
        fields.remove("debug_file"),
        fields.remove("debug_identifier"),
    ) else {
        return Err(UploadError::BadRequest(
            "`debug_file` and `debug_identifier` are required".into(),
        )
        .into());
    };
    let claim = Claim {
        upload_type: "BREAKPAD".into(),
        debug_file,
        debug_id,
    };
    app.uploads
        .finish_in(received, claim, key.origin(transaction))
        .await?;
    Ok((StatusCode::OK, "OK").into_response().noted("upload-v1"))
}

/// `PUT /api/sources/<build id>/<absolute path>`: a source file of an uploaded ELF module,
/// served to debuginfod clients at `/buildid/<build id>/source/<absolute path>`. The path is
/// validated and canonicalized exactly as a debuginfod request's (no `..` above `/`).
pub async fn put_source(
    caller: RequireKey,
    State(app): State<Arc<App>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let rest = app
        .below_prefix(uri.path())
        .and_then(|p| p.strip_prefix("/api/sources/"))
        .unwrap_or_default();
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let bad = |e: String| ApiError::BadRequest("bad_source", e);
    let request = symhub_core::debuginfod::DebuginfodRequest::parse_path(&format!(
        "buildid/{id}/source/{path}"
    ))
    .map_err(|e| {
        bad(format!(
            "expected /api/sources/<build id>/<absolute path>: {e}"
        ))
    })?;
    let symhub_core::debuginfod::Artifact::Source(source) = &request.artifact else {
        return Err(bad(
            "expected /api/sources/<build id>/<absolute path>".into()
        ));
    };
    let key = crate::debuginfod::source(&request.build_id, source)
        .ok_or_else(|| bad("not a storable source path".into()))?;
    let received = app
        .uploads
        .receive(body.into_data_stream(), declared_length(&headers))
        .await?;
    let committed = app
        .uploads
        .store_source(
            received,
            key,
            request.build_id.as_str(),
            source.as_str(),
            caller.origin(None),
        )
        .await?;
    Ok(json::reply(
        StatusCode::OK,
        &json!({
            "result": result_name(committed),
            "build_id": request.build_id.as_str(),
            "path": source.as_str(),
        }),
    )
    .noted("source-stored"))
}
