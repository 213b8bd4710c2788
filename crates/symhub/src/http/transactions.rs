//! Upload transactions over HTTP (every route needs an API key; the store's rules are in
//! [`crate::store::transactions`]):
//! - `POST /api/transactions` — `{"product": …, "version": …, "comment": …}` opens one;
//!   201 with it (`id` …). The uploader recorded is the key's fingerprint, never the key.
//! - `GET /api/transactions[?product=…&version=…]` — live and deleted ones, oldest first
//! - `GET /api/transactions/<id>?after=…&limit=…` — one and a page of its keys
//! - `DELETE /api/transactions/<id>` — delete it
//! - `DELETE /api/transactions?product=…[&version=…]` — delete every live one that matches
//!
//! Uploads join a transaction with `?transaction=<id>` on sym-upload v1 and on v2's
//! `:complete` ([`transaction_param`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{need, ApiError, RequireKey};
use super::extract::{Json, JsonBody, Path};
use super::log::Noted;
use super::{json, App};
use crate::store::transactions::TransactionError;
use crate::store::SymbolStore;

type Answer = Result<Response, ApiError>;

/// Runs store work on the blocking pool (the database blocks).
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&SymbolStore) -> Result<T, TransactionError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.uploads.store().clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::BadRequest(
            "bad_transaction",
            format!("`{raw}` is not a transaction id (a positive integer)"),
        )
    })
}

/// The `transaction=<id>` parameter of an upload's query, if any.
pub(super) fn transaction_param(query: Option<&str>) -> Result<Option<i64>, ApiError> {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("transaction="))
        .map(parse_id)
        .transpose()
}

/// Unknown fields are refused: a misspelt `expire` would otherwise make a run that
/// retention never removes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransaction {
    product: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    comment: String,
    /// `28d`, `12h`…: retention removes the run after that long.
    #[serde(default)]
    expires: Option<String>,
}

impl JsonBody for NewTransaction {
    const SHAPE: &'static str = r#"{"product": …, "version": …, "comment": …, "expires": "28d"}"#;
}

pub async fn create(
    key: RequireKey,
    State(app): State<Arc<App>>,
    Json(new): Json<NewTransaction>,
) -> Answer {
    let uploader = key.caller().name.to_string();
    let expires = crate::store::retention::parse_expiry(new.expires.as_deref())
        .map_err(|m| ApiError::BadRequest("bad_expiry", m))?;
    let expires_at = crate::store::retention::expires_at(expires);
    let info = blocking(&app, move |store| {
        let id = store.begin_transaction_expiring(
            &new.product,
            &new.version,
            &new.comment,
            &uploader,
            expires_at,
        )?;
        Ok(store.transaction(id)?)
    })
    .await?;
    Ok(json::reply(StatusCode::CREATED, &info).noted("transaction-created"))
}

#[derive(Deserialize)]
pub struct Filter {
    product: Option<String>,
    version: Option<String>,
    #[serde(default)]
    after: String,
    limit: Option<usize>,
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest("bad_query", format!("{e} (use ?product=…&version=…)")))
}

pub async fn list(
    _: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let list = blocking(&app, move |store| {
        Ok(store.list_transactions(q.product.as_deref(), q.version.as_deref())?)
    })
    .await?;
    Ok(json::reply(StatusCode::OK, &json!({ "transactions": list })).noted("transactions"))
}

pub async fn show(
    _: RequireKey<need::Download>,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let (id, q) = (parse_id(&id)?, query(q)?);
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let (info, keys) = blocking(&app, move |store| {
        let info = store
            .transaction(id)?
            .ok_or(TransactionError::Unknown(id))?;
        Ok((info, store.transaction_keys(id, &q.after, limit)?))
    })
    .await?;
    let next = (keys.len() == limit)
        .then(|| keys.last().map(|k| k.key.clone()))
        .flatten();
    Ok(json::reply(
        StatusCode::OK,
        &json!({ "transaction": info, "keys": keys, "next": next }),
    )
    .noted("transaction"))
}

pub async fn delete(
    _: RequireKey<need::Admin>,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Answer {
    let id = parse_id(&id)?;
    let report = blocking(&app, move |store| store.delete_transaction(id)).await?;
    Ok(json::reply(StatusCode::OK, &json!({ "deleted": [report] })).noted("transaction-deleted"))
}

pub async fn delete_matching(
    _: RequireKey<need::Admin>,
    State(app): State<Arc<App>>,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    // Never "everything": a product is required.
    let Some(product) = q.product.filter(|p| !p.trim().is_empty()) else {
        return Err(ApiError::BadRequest(
            "bad_query",
            "DELETE /api/transactions needs ?product=…[&version=…]".into(),
        ));
    };
    let reports = blocking(&app, move |store| {
        store.delete_transactions_of(&product, q.version.as_deref())
    })
    .await?;
    Ok(json::reply(StatusCode::OK, &json!({ "deleted": reports })).noted("transaction-deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_parameter_of_an_upload() {
        assert_eq!(transaction_param(None).unwrap(), None);
        assert_eq!(transaction_param(Some("key=k")).unwrap(), None);
        assert_eq!(
            transaction_param(Some("key=k&transaction=12")).unwrap(),
            Some(12)
        );
        for bad in [
            "transaction=",
            "transaction=x",
            "transaction=-1",
            "transaction=0",
        ] {
            assert!(transaction_param(Some(bad)).is_err(), "{bad}");
        }
    }
}
