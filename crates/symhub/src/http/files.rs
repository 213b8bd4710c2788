//! Raw build output over HTTP (what `symhub upload` speaks; any script can too):
//! - `PUT /api/files/<name>[?transaction=<id>]`: the file as the body. The server identifies
//!   it from its bytes and answers the keys it was stored under (JSON, see
//!   [`crate::upload::files::FileReport`]); 422 `not_a_debug_file` with the reason for a
//!   file it cannot key. `<name>` is the file's name (only the last segment counts).
//! - `POST /api/files/missing[?transaction=<id>]` with `{"files": [{"sha256", "keys",
//!   "derived"}]}`: which of these files the server does not hold under every key with
//!   these bytes (`{"missing": [indices]}`), so a client uploads only those. Files it holds
//!   are recorded in the transaction as if uploaded again, with their `derived` keys (a
//!   `.sym` made from them), so deleting an older transaction cannot take them away.
//!
//! Both need an API key.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::api::declared_length;
use super::error::{ApiError, RequireKey};
use super::extract::{Json, JsonBody};
use super::log::Noted;
use super::{json, App};

pub async fn put(
    key: RequireKey,
    State(app): State<Arc<App>>,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest("bad_name", e.body_text()))?;
    let transaction = super::transactions::transaction_param(query.as_deref())?;
    // Refused before the body is read, not after.
    crate::upload::files::file_name(&name)?;
    if let Some(id) = transaction {
        app.uploads.check_transaction(id).await?;
    }
    let received = app
        .uploads
        .receive(body.into_data_stream(), declared_length(&headers))
        .await?;
    let report = app
        .uploads
        .ingest_file(received, &name, key.origin(transaction))
        .await?;
    Ok(json::reply(StatusCode::OK, &report).noted("file-stored"))
}

/// Unknown fields are refused, here and in each file ([`crate::upload::files::Held`]): a
/// misspelt `derived` would otherwise leave a `.sym` out of the transaction unnoticed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingRequest {
    files: Vec<crate::upload::files::Held>,
}

impl JsonBody for MissingRequest {
    const SHAPE: &'static str = r#"{"files": [{"sha256", "keys", "derived"}]}"#;
}

pub async fn missing(
    _: RequireKey,
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Json(body): Json<MissingRequest>,
) -> Result<Response, ApiError> {
    let transaction = super::transactions::transaction_param(query.as_deref())?;
    if body.files.len() > 10_000 {
        return Err(ApiError::BadRequest(
            "too_many_files",
            "ask about at most 10000 files at a time".into(),
        ));
    }
    let missing = app.uploads.missing(body.files, transaction).await?;
    Ok(json::reply(StatusCode::OK, &json!({ "missing": missing })).noted("files-checked"))
}
