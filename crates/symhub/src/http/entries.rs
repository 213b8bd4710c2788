//! The store and cache, one key at a time, for the console and scripts:
//! - `GET /api/symbols?q=…&after=…&limit=…` (download scope): stored keys whose debug file,
//!   debug id, code file or code id is `q`, or that start with `q` (all keys without it),
//!   50 per page by default, 1000 at most; `next` is the cursor of the next page.
//!   Without `q`: the listing by key prefix (`?prefix=`), 1000 per page, as before.
//! - `GET /api/symbols/<key>` (download scope): the key's record wherever symhub has it —
//!   the store (`source`: `upload` or `transaction`), a package, or this instance's cache
//!   (`cache`, or `derived` for a `.sym` made on demand).
//! - `DELETE /api/symbols/<key>` (admin scope): removes a stored key (its bytes go when
//!   nothing else uses them) or, when only cached, this instance's copy.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::json;
use symhub_core::SymbolKey;

use super::error::{need, ApiError, RequireKey};
use super::log::Noted;
use super::{json, App};
use crate::auth::Scope;

type Answer = Result<Response, ApiError>;

/// What a path segment may not hold as it is.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
    prefix: Option<String>,
    #[serde(default)]
    after: String,
    limit: Option<usize>,
}

pub async fn search(
    _: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    query: Result<Query<Search>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Ok(Query(q)) = query else {
        return Err(ApiError::BadRequest(
            "bad_query",
            "use ?q=…&after=…&limit=… (or ?prefix=…)".into(),
        ));
    };
    let store = app.cache.store().clone();
    let Some(text) = q.q else {
        // The listing's old shape: key order by prefix, 1000 per page.
        let prefix = q.prefix.unwrap_or_default();
        let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
        let rows = app.uploads.list(prefix, q.after, limit).await?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.key.clone()))
            .flatten();
        let symbols: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "key": r.display,
                    "size": r.size,
                    "sha256": r.sha256,
                    "uploaded_at": humantime::format_rfc3339_seconds(r.uploaded_at).to_string(),
                })
            })
            .collect();
        return Ok(
            json::reply(StatusCode::OK, &json!({ "symbols": symbols, "next": next })).noted("list"),
        );
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    // One more than a page: `next` only when there is more.
    let mut rows = tokio::task::spawn_blocking(move || store.search(&text, &q.after, limit + 1))
        .await?
        .map_err(anyhow::Error::from)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more
        .then(|| rows.last().map(|r| r.key.to_lowercase()))
        .flatten();
    Ok(json::reply(StatusCode::OK, &json!({ "symbols": rows, "next": next })).noted("search"))
}

/// The key in `/api/symbols/<key>`, parsed as a symbol path (percent-decoded).
fn key_of(app: &App, uri: &Uri) -> Result<SymbolKey, ApiError> {
    let raw = uri
        .path()
        .strip_prefix(app.path_prefix.as_str())
        .and_then(|p| p.strip_prefix("/api/symbols/"))
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    SymbolKey::parse_path(&decoded).map_err(|e| {
        ApiError::BadRequest(
            "bad_key",
            format!("expected /api/symbols/<file>/<id>/<file>: {e}"),
        )
    })
}

fn not_found(key: &SymbolKey) -> ApiError {
    ApiError::NotFound(
        "not_found",
        format!("symhub has no {key} (stored, packaged or cached here)"),
    )
}

pub async fn show(
    key: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Answer {
    let symbol = key_of(&app, &uri)?;
    let admin = key.caller().scope >= Scope::Admin;
    let norm = symbol.normalized().to_owned();
    let store = app.cache.store().clone();
    let (detail, packaged) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::db::DbError>((
            store.symbol_detail(&norm)?,
            store.packaged_key(&norm)?,
        ))
    })
    .await?
    .map_err(anyhow::Error::from)?;
    // Each segment encoded, so a key with `#`, `?` or `%` still links to itself.
    let download_url: String = symbol
        .to_string()
        .split('/')
        .map(|s| format!("/{}", percent_encoding::utf8_percent_encode(s, SEGMENT)))
        .collect();
    let body = if let Some(d) = detail {
        let mut v = serde_json::to_value(&d).map_err(anyhow::Error::from)?;
        v["package"] = json!(packaged.map(|p| p.package));
        v["upstream"] = json!(null);
        v["deletable"] = json!(admin);
        v
    } else if let Some(p) = packaged {
        json!({
            "key": p.key, "size": p.size, "sha256": p.sha256, "source": "package",
            "uploaded_at": humantime::format_rfc3339_seconds(p.added_at).to_string(),
            "uploader": null, "kind": null, "debug_file": null, "debug_id": null,
            "code_file": null, "code_id": null, "upstream": null, "transactions": [],
            "other_keys": [], "package": p.package,
            // A package's keys go with the package (`DELETE /api/packages/<name>`).
            "deletable": false,
        })
    } else if let Some(c) = app.cache.cached(symbol.normalized()).await {
        let derived = c.upstream.starts_with("derived:");
        json!({
            "key": symbol.to_string(), "size": c.size, "sha256": c.sha256,
            "source": if derived { "derived" } else { "cache" },
            "uploaded_at": humantime::format_rfc3339_seconds(c.last_modified).to_string(),
            "uploader": null, "kind": null, "debug_file": null, "debug_id": null,
            "code_file": null, "code_id": null, "upstream": c.upstream, "transactions": [],
            "other_keys": [], "package": null, "deletable": admin,
        })
    } else {
        return Err(not_found(&symbol));
    };
    let mut body = body;
    body["download_url"] = json!(download_url);
    Ok(json::reply(StatusCode::OK, &body).noted("symbol"))
}

pub async fn delete(_: RequireKey<need::Admin>, State(app): State<Arc<App>>, uri: Uri) -> Answer {
    let symbol = key_of(&app, &uri)?;
    let (store, norm) = (app.cache.store().clone(), symbol.normalized().to_owned());
    let deleted = tokio::task::spawn_blocking(move || store.delete_symbol(&norm))
        .await?
        .map_err(anyhow::Error::from)?;
    let body = match deleted {
        Some(d) => json!({ "deleted": d.deleted, "blob_removed": d.blob_removed, "from": "store" }),
        None if app.cache.evict_one(symbol.normalized()).await => {
            tracing::info!(key = %symbol, "cached copy removed");
            json!({ "deleted": symbol.to_string(), "blob_removed": true, "from": "cache" })
        }
        None => return Err(not_found(&symbol)),
    };
    Ok(json::reply(StatusCode::OK, &body).noted("symbol-deleted"))
}
