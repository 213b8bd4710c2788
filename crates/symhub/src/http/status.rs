//! `GET /api/status`: what the console's Status page shows, from what the server keeps
//! itself — each upstream's health and record, request counts over the last hour
//! ([`crate::history`]), downloads in progress, the cache's use against its limit, and the
//! store's size. Public like `/metrics`, unless `auth.require_for_metrics`; what it shows
//! to anyone holds no secret: upstream URLs without their credentials, and the keys being
//! downloaded only to a key holder when downloads need a key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use serde_json::json;

use super::error::ApiError;
use super::log::Noted;
use super::{json, App};
use crate::store::time::rfc3339;

/// The store's totals are a scan of its key table: read at most this often.
const TOTALS_EVERY: Duration = Duration::from_secs(30);

/// The store's key count and bytes, as last read.
#[derive(Default)]
pub struct StoreTotals(Mutex<Option<(Instant, (u64, u64))>>);

async fn store_totals(app: &App) -> Result<(u64, u64), ApiError> {
    if let Some((at, totals)) = *app.store_totals.0.lock().unwrap_or_else(|p| p.into_inner()) {
        if at.elapsed() < TOTALS_EVERY {
            return Ok(totals);
        }
    }
    let store = app.cache.store().clone();
    let totals = tokio::task::spawn_blocking(move || store.totals())
        .await?
        .map_err(anyhow::Error::from)?;
    *app.store_totals.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), totals));
    Ok(totals)
}

pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    super::ops::allowed(&app, &headers, &uri).await?;
    let upstreams: Vec<_> = app
        .cache
        .upstreams()
        .list()
        .iter()
        .map(|u| {
            let mut v = serde_json::to_value(u.stats.snapshot()).unwrap_or_default();
            v["name"] = json!(&*u.name);
            v["url"] = json!(shown_url(u.base()));
            v["down"] = json!(u.health.is_down());
            v
        })
        .collect();
    let history = &app.metrics.history;
    let t = history.totals();
    let points: Vec<_> = history
        .points()
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["at"] = json!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(p.at)));
            v
        })
        .collect();
    let (cache_bytes, cache_limit) = app.cache.usage();
    let (keys, bytes) = store_totals(&app).await?;
    let started = app.metrics.started;
    let mut fills = app.cache.fills_in_progress();
    // Private symbols' names are theirs to see only.
    if app.keys.require_for_downloads
        && app
            .keys
            .check(&headers, uri.query(), crate::auth::Scope::Download)
            .await
            .is_err()
    {
        for f in &mut fills {
            f.key = "(hidden: downloads need a key)".into();
        }
    }
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(started),
        "uptime_s": SystemTime::now().duration_since(started).unwrap_or_default().as_secs(),
        "upstreams": upstreams,
        "totals": {
            "requests": t.hits + t.misses + t.negatives,
            "hits": t.hits, "misses": t.misses, "negatives": t.negatives,
            "bytes_served": t.bytes,
        },
        "history": { "interval_s": crate::history::INTERVAL.as_secs(), "points": points },
        "fills": fills,
        "cache": {
            "bytes": cache_bytes,
            "limit": cache_limit,
            "entries": app.metrics.cache_entries.get().max(0),
        },
        "store": { "keys": keys, "bytes": bytes, "shared": app.cache.store().is_shared() },
    });
    Ok(json::reply(StatusCode::OK, &body).noted("status"))
}

/// An upstream's base URL as anyone may see it: without its user name and password (symhub
/// sends them as Basic credentials: a break-it pass read them off the public Status page).
fn shown_url(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            let shown = url.to_string();
            shown.replacen("://", "://…@", 1)
        }
        Ok(url) => url.to_string(),
        Err(_) => "(not shown)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_never_shown() {
        let shown = super::shown_url("https://builduser:S3cret@symbols.example/sym/");
        assert_eq!(shown, "https://…@symbols.example/sym/");
        let shown = super::shown_url("https://token@symbols.example/");
        assert!(!shown.contains("token"), "{shown}");
        assert_eq!(
            super::shown_url("https://msdl.microsoft.com/download/symbols/"),
            "https://msdl.microsoft.com/download/symbols/"
        );
    }
}
