//! SSQP package management over HTTP (every route needs an API key):
//! - `PUT /api/packages/<name>` — add, or replace atomically, from the zip in the body
//!   (replacing needs an admin key, like removing: the keys the new zip lacks go)
//! - `POST /api/packages?name=<name>` — the same
//! - `GET /api/packages` — name, size, key count, added-at of every package
//! - `GET /api/packages/<name>?after=…&limit=…` — one package and a page of its keys
//! - `DELETE /api/packages/<name>` — remove; its keys fall back to other packages

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::api::declared_length;
use super::error::{need, ApiError, RequireKey};
use super::extract::{Path, Query};
use super::log::Noted;
use super::{json, App};
use crate::auth::{Caller, Denied, Scope};
use crate::package::{valid_name, PackageError};
use crate::upload::UploadError;

type Answer = Result<Response, ApiError>;

async fn ingest(
    app: Arc<App>,
    caller: &Caller,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    if !valid_name(&name) {
        return Err(ApiError::BadRequest(
            "bad_name",
            format!("`{name}` is not a valid package name (letters, digits, `.`, `_`, `-`, `+`)"),
        ));
    }
    // Replacing takes away the keys the new zip lacks, as removing does: an upload key
    // emptied an admin's package, unrecorded (break-it pass). Checked before the body is
    // read, so a refusal costs no upload, and again when the package goes live: one added
    // meanwhile is not replaced either.
    let may_replace = caller.scope == Scope::Admin;
    if !may_replace
        && app
            .packages
            .page(name.clone(), String::new(), 1)
            .await?
            .is_some()
    {
        return Err(Denied::Scope {
            name: caller.name.to_string(),
            have: caller.scope,
            need: Scope::Admin,
        }
        .into());
    }
    let packages = &app.packages;
    let zip = crate::upload::receive(
        packages.store(),
        body.into_data_stream(),
        declared_length(&headers),
        packages.config.max_size.as_u64(),
        app.uploads.body_idle_timeout,
    )
    .await
    .map_err(|e| match e {
        // The limit is the package's, not an upload's.
        UploadError::TooLarge(max) => PackageError::ZipTooBig(max).into(),
        e => ApiError::from(e),
    })?;
    let done = packages.ingest(name, zip, may_replace).await?;
    let status = if done.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json::reply(status, &done).noted("package-added"))
}

pub async fn put(
    key: RequireKey,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    ingest(app, key.caller(), name, headers, body).await
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
    #[serde(default)]
    after: String,
    limit: Option<usize>,
}

pub async fn add(
    key: RequireKey,
    State(app): State<Arc<App>>,
    Query(q): Query<NameQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let Some(name) = q.name else {
        return Err(ApiError::BadRequest(
            "bad_name",
            "POST /api/packages needs ?name=<package name>".into(),
        ));
    };
    ingest(app, key.caller(), name, headers, body).await
}

pub async fn list(_: RequireKey<need::Download>, State(app): State<Arc<App>>) -> Answer {
    let list = app.packages.all().await?;
    Ok(json::reply(StatusCode::OK, &json!({ "packages": list })).noted("packages"))
}

pub async fn show(
    _: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<NameQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let Some((info, keys)) = app.packages.page(name, q.after, limit).await? else {
        return Err(unknown());
    };
    let next = (keys.len() == limit)
        .then(|| keys.last().map(|k| k.key.clone()))
        .flatten();
    let keys: Vec<_> = keys
        .iter()
        .map(|k| json!({ "key": k.display, "size": k.size, "sha256": k.sha256, "derived": k.derived }))
        .collect();
    Ok(json::reply(
        StatusCode::OK,
        &json!({ "package": info, "keys": keys, "next": next }),
    )
    .noted("package"))
}

pub async fn remove(
    _: RequireKey<need::Admin>,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Answer {
    if !app.packages.delete(name.clone()).await? {
        return Err(unknown());
    }
    Ok(json::reply(StatusCode::OK, &json!({ "removed": name })).noted("package-removed"))
}

fn unknown() -> ApiError {
    ApiError::NotFound("unknown_package", "no such package".into())
}
