//! The missing-symbol ledger over HTTP ([`crate::missing`]), with a key:
//! - `GET /api/missing[?order=count|recent][&limit=N][&offset=N]`: `{"total": n, "missing":
//!   [{"key", "count", "first_seen", "last_seen", "answers", "clients"}]}`, most requested
//!   (or most recent) first, `limit` 100 by default (at most 1000). Times are RFC 3339 (UTC).
//! - `DELETE /api/missing/<key>`: forget a miss — its row, and this instance's remembered
//!   negative entries for it, so the next request asks upstreams again.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{need, ApiError, RequireKey};
use super::log::Noted;
use super::{json, App};
use crate::store::missing::{Missed, MissingOrder};

#[derive(Deserialize)]
pub struct Page {
    order: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// With milliseconds: misses come many to the second.
fn rfc3339(unix_ms: i64) -> String {
    humantime::format_rfc3339_millis(crate::store::time::from_millis(unix_ms)).to_string()
}

fn entry(m: &Missed) -> serde_json::Value {
    json!({
        "key": m.display,
        "count": m.count,
        "first_seen": rfc3339(m.first_seen),
        "last_seen": rfc3339(m.last_seen),
        "answers": m.answers,
        "clients": crate::missing::client_names(m.clients),
    })
}

pub async fn list(
    _: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    let order = match q.order.as_deref() {
        None | Some("count") => MissingOrder::Count,
        Some("recent") => MissingOrder::Recent,
        Some(other) => {
            return Err(ApiError::BadRequest(
                "bad_query",
                format!("order must be `count` or `recent`, not `{other}`"),
            ))
        }
    };
    let (limit, offset) = (
        q.limit.unwrap_or(100).clamp(1, 1000),
        q.offset.unwrap_or(0).max(0),
    );
    // What this instance counted but has not written yet is part of the answer.
    let (ledger, store) = (app.ledger.clone(), app.cache.store().clone());
    let (page, total) = tokio::task::spawn_blocking(move || {
        ledger.flush();
        store.missing_page(order, limit, offset)
    })
    .await?
    .map_err(anyhow::Error::from)?;
    let missing: Vec<_> = page.iter().map(entry).collect();
    Ok(json::reply(
        StatusCode::OK,
        &json!({ "total": total, "missing": missing }),
    )
    .noted("missing"))
}

pub async fn forget(
    _: RequireKey,
    State(app): State<Arc<App>>,
    uri: http::Uri,
) -> Result<Response, ApiError> {
    let key = super::entries::key_in_path(&app, &uri, "/api/missing/")?;
    let norm = key.normalized().to_owned();
    let (ledger, store) = (app.ledger.clone(), app.cache.store().clone());
    let n = norm.clone();
    // A miss counted but not written yet would come back at the next write.
    let found = tokio::task::spawn_blocking(move || {
        ledger.flush();
        store.forget_missing(&n)
    })
    .await?
    .map_err(anyhow::Error::from)?;
    app.cache.forget_misses(&key).await;
    Ok(json::reply(
        StatusCode::OK,
        &json!({ "key": key.as_str(), "forgotten": found }),
    )
    .noted("missing-forgotten"))
}
