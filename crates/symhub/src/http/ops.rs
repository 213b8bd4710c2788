//! Operational endpoints: `GET /healthz` (JSON, says `degraded` while an upstream is down)
//! and `GET /metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use http::header;

use super::App;

pub async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let upstreams: Vec<_> = app
        .cache
        .upstreams()
        .list()
        .iter()
        .map(|u| serde_json::json!({ "name": &*u.name, "down": u.health.is_down() }))
        .collect();
    let degraded = upstreams.iter().any(|u| u["down"] == true);
    Json(serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "upstreams": upstreams,
    }))
}

pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
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
}
