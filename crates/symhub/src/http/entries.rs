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
use crate::cache::derive::is_derived;
use crate::store::time::rfc3339;

type Answer = Result<Response, ApiError>;

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
                    "uploaded_at": rfc3339(r.uploaded_at),
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
        .then(|| rows.last().map(|r| symhub_core::key::fold_case(&r.key)))
        .flatten();
    Ok(json::reply(StatusCode::OK, &json!({ "symbols": rows, "next": next })).noted("search"))
}

/// The key after `route` (`/api/symbols/`) in the request path, parsed as a symbol path is:
/// each segment percent-decoded once, by the parse itself.
pub(super) fn key_in_path(app: &App, uri: &Uri, route: &str) -> Result<SymbolKey, ApiError> {
    let raw = app
        .below_prefix(uri.path())
        .and_then(|p| p.strip_prefix(route))
        .unwrap_or_default();
    SymbolKey::parse_path(raw).map_err(|e| {
        ApiError::BadRequest(
            "bad_key",
            format!("expected {route}<file>/<id>/<file>: {e}"),
        )
    })
}

fn not_found(key: &SymbolKey) -> ApiError {
    ApiError::NotFound(
        "not_found",
        format!("symhub has no {key} (stored, packaged or cached here)"),
    )
}

/// One key's record as `GET /api/symbols/<key>` answers it, wherever symhub has it; what a
/// source does not know is `null`.
#[derive(Default, serde::Serialize)]
struct Record {
    key: String,
    size: u64,
    sha256: String,
    /// `upload`, `transaction`, `package`, `cache` or `derived`.
    source: &'static str,
    uploaded_at: Option<String>,
    uploader: Option<String>,
    kind: Option<String>,
    debug_file: Option<String>,
    debug_id: Option<String>,
    code_file: Option<String>,
    code_id: Option<String>,
    /// The upstream a cached copy came from.
    upstream: Option<String>,
    transactions: Vec<i64>,
    other_keys: Vec<String>,
    package: Option<String>,
    /// A package's keys go with the package (`DELETE /api/packages/<name>`), never alone.
    deletable: bool,
    download_url: String,
}

pub async fn show(
    key: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Answer {
    let symbol = key_in_path(&app, &uri, "/api/symbols/")?;
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
    // As an upstream URL spells it: each segment encoded, so `#`, `?` or `%` still link.
    let download_url = format!("/{}", symbol.url_path(symhub_core::Spelling::AsRequested));
    let record = if let Some(d) = detail {
        let i = d.info;
        Record {
            key: i.key,
            size: i.size,
            sha256: i.sha256,
            source: i.source,
            uploaded_at: Some(rfc3339(i.uploaded_at)),
            uploader: i.uploader,
            kind: Some(i.kind),
            debug_file: Some(i.debug_file),
            debug_id: Some(i.debug_id),
            code_file: i.code_file,
            code_id: i.code_id,
            transactions: d.transactions,
            other_keys: d.other_keys,
            package: packaged.map(|p| p.package),
            deletable: admin,
            download_url,
            ..Record::default()
        }
    } else if let Some(p) = packaged {
        Record {
            key: p.key,
            size: p.size,
            sha256: p.sha256,
            source: "package",
            uploaded_at: Some(rfc3339(p.added_at)),
            package: Some(p.package),
            download_url,
            ..Record::default()
        }
    } else if let Some(c) = app.cache.cached(symbol.normalized()).await {
        Record {
            key: symbol.to_string(),
            size: c.size,
            sha256: c.sha256,
            source: if is_derived(&c.upstream) {
                "derived"
            } else {
                "cache"
            },
            uploaded_at: Some(rfc3339(c.last_modified)),
            upstream: Some(c.upstream),
            deletable: admin,
            download_url,
            ..Record::default()
        }
    } else {
        return Err(not_found(&symbol));
    };
    Ok(json::reply(StatusCode::OK, &record).noted("symbol"))
}

pub async fn delete(_: RequireKey<need::Admin>, State(app): State<Arc<App>>, uri: Uri) -> Answer {
    let symbol = key_in_path(&app, &uri, "/api/symbols/")?;
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
