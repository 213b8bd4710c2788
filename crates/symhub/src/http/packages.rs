//! SSQP package management over HTTP (every route needs an API key):
//! - `PUT /api/packages/<name>` — add, or replace atomically, from the zip in the body
//! - `POST /api/packages?name=<name>` — the same
//! - `GET /api/packages` — name, size, key count, added-at of every package
//! - `GET /api/packages/<name>?after=…&limit=…` — one package and a page of its keys
//! - `DELETE /api/packages/<name>` — remove; its keys fall back to other packages

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::api::{declared_length, failed, unauthorized};
use super::log::Noted;
use super::{json, App};
use crate::package::{valid_name, PackageError};

fn refused(e: PackageError) -> Response {
    let (status, code) = match &e {
        PackageError::TooBig(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        PackageError::Internal(e) if crate::store::is_unavailable(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
        }
        PackageError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        PackageError::Duplicates { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_keys"),
        PackageError::MissingBlob(_) => (StatusCode::UNPROCESSABLE_ENTITY, "missing_blob"),
        PackageError::NoIndex | PackageError::BadIndex(_) | PackageError::BadKey { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "bad_index")
        }
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "bad_package"),
    };
    if status.is_server_error() {
        tracing::error!("package ingest failed: {e}");
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "the symbol store's storage is unreachable; retry later"
        } else {
            "the server could not store the package; see its log"
        };
        return json::error(status, code, message);
    }
    tracing::warn!("package refused: {e}");
    json::error(status, code, e.to_string()).noted("package-refused")
}

async fn ingest(app: Arc<App>, name: String, headers: HeaderMap, body: Body) -> Response {
    if !valid_name(&name) {
        return json::error(
            StatusCode::BAD_REQUEST,
            "bad_name",
            format!("`{name}` is not a valid package name (letters, digits, `.`, `_`, `-`, `+`)"),
        );
    }
    let packages = app.packages.clone();
    let max = packages.config.max_size.as_u64();
    let received = match crate::upload::receive(
        packages.store(),
        body.into_data_stream(),
        declared_length(&headers),
        max,
        app.uploads.body_idle_timeout,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let result =
        tokio::task::spawn_blocking(move || packages.ingest_file(&name, &received.path, &|_| {}))
            .await;
    match result {
        Ok(Ok(done)) => {
            let status = if done.replaced {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            json::reply(status, &done).noted("package-added")
        }
        Ok(Err(e)) => refused(e),
        Err(e) => refused(PackageError::Internal(e.into())),
    }
}

pub async fn put(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(r) = unauthorized(&app, &headers, &query) {
        return r;
    }
    ingest(app, name, headers, body).await
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
    #[serde(default)]
    after: String,
    limit: Option<usize>,
}

pub async fn add(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    Query(q): Query<NameQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(r) = unauthorized(&app, &headers, &raw) {
        return r;
    }
    let Some(name) = q.name else {
        return json::error(
            StatusCode::BAD_REQUEST,
            "bad_name",
            "POST /api/packages needs ?name=<package name>",
        );
    };
    ingest(app, name, headers, body).await
}

pub async fn list(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&app, &headers, &raw) {
        return r;
    }
    let packages = app.packages.clone();
    match tokio::task::spawn_blocking(move || packages.list()).await {
        Ok(Ok(list)) => json::reply(StatusCode::OK, &json!({ "packages": list })).noted("packages"),
        _ => json::internal(),
    }
}

pub async fn show(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<NameQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&app, &headers, &raw) {
        return r;
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let packages = app.packages.clone();
    let found = tokio::task::spawn_blocking(move || packages.show(&name, &q.after, limit)).await;
    match found {
        Ok(Ok(Some((info, keys)))) => {
            let next = (keys.len() == limit)
                .then(|| keys.last().map(|k| k.key.clone()))
                .flatten();
            let keys: Vec<_> = keys
                .iter()
                .map(|k| json!({ "key": k.display, "size": k.size, "sha256": k.sha256, "derived": k.derived }))
                .collect();
            json::reply(
                StatusCode::OK,
                &json!({ "package": info, "keys": keys, "next": next }),
            )
            .noted("package")
        }
        Ok(Ok(None)) => json::error(StatusCode::NOT_FOUND, "unknown_package", "no such package"),
        _ => json::internal(),
    }
}

pub async fn remove(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&app, &headers, &raw) {
        return r;
    }
    let packages = app.packages.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || packages.remove(&n)).await {
        Ok(Ok(true)) => {
            json::reply(StatusCode::OK, &json!({ "removed": name })).noted("package-removed")
        }
        Ok(Ok(false)) => json::error(StatusCode::NOT_FOUND, "unknown_package", "no such package"),
        _ => json::internal(),
    }
}
