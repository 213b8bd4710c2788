//! Operational endpoints: `GET /healthz` (JSON, says `degraded` while an upstream, or a
//! shared store's bucket or database, is down)
//! and `GET /metrics` (Prometheus text). With `auth.require_for_metrics`, metrics need a key
//! and `/healthz` shows its upstream details only to a key holder: its status stays public
//! because load balancers probe it without credentials.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap, Uri};

use super::error::ApiError;
use super::App;

/// With `auth.require_for_metrics`, whether the request carries a valid key.
pub(super) async fn allowed(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    if !app.keys.require_for_metrics {
        return Ok(());
    }
    app.keys
        .check(headers, uri.query(), crate::auth::Scope::Download)
        .await?;
    Ok(())
}

pub async fn healthz(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let report = app.cache.health().await;
    let status = if report.degraded() { "degraded" } else { "ok" };
    if allowed(&app, &headers, &uri).await.is_err() {
        return Json(serde_json::json!({ "status": status })).into_response();
    }
    let upstreams: Vec<_> = report
        .upstreams
        .iter()
        .map(|(name, down)| serde_json::json!({ "name": &**name, "down": down }))
        .collect();
    let mut body = serde_json::json!({
        "status": status,
        "upstreams": upstreams,
        "data_dir_ok": report.data_dir,
    });
    if let Some((bucket, db)) = report.store {
        body["store"] = serde_json::json!({ "bucket_ok": bucket, "database_ok": db });
    }
    Json(body).into_response()
}

pub async fn metrics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    allowed(&app, &headers, &uri).await?;
    for u in app.cache.upstreams().list() {
        app.metrics.set_upstream_down(&u.name, u.health.is_down());
    }
    // The body is OpenMetrics (`# EOF`, counters typed without their `_total`), so it says
    // so: read as Prometheus' older text format, the types would not match the samples.
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response())
}
