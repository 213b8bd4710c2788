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

use super::App;
use crate::auth::Denied;

fn allowed(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<(), Denied> {
    if !app.keys.require_for_metrics {
        return Ok(());
    }
    app.keys.check(headers, uri.query())
}

pub async fn healthz(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let upstreams: Vec<_> = app
        .cache
        .upstreams()
        .list()
        .iter()
        .map(|u| serde_json::json!({ "name": &*u.name, "down": u.health.is_down() }))
        .collect();
    // Only a shared store has remote parts to check (a blocking probe); a local one has none.
    let store = app.cache.store().clone();
    let shared = if store.is_shared() {
        tokio::task::spawn_blocking(move || store.shared_health())
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let degraded = upstreams.iter().any(|u| u["down"] == true)
        || shared.is_some_and(|(bucket, db)| !bucket || !db);
    let status = if degraded { "degraded" } else { "ok" };
    if allowed(&app, &headers, &uri).is_err() {
        return Json(serde_json::json!({ "status": status })).into_response();
    }
    let mut body = serde_json::json!({ "status": status, "upstreams": upstreams });
    if let Some((bucket, db)) = shared {
        body["store"] = serde_json::json!({ "bucket_ok": bucket, "database_ok": db });
    }
    Json(body).into_response()
}

pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(denied) = allowed(&app, &headers, &uri) {
        return super::api::denied(denied);
    }
    for u in app.cache.upstreams().list() {
        app.metrics.set_upstream_down(&u.name, u.health.is_down());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
