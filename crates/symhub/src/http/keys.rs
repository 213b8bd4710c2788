//! Key management over HTTP (admin scope), and `whoami` for any key:
//! - `GET /api/whoami` → `{"name", "scope"}` of the presented key (the console asks it).
//! - `GET /api/keys` → `{"keys": [{"name", "scope", "created_at", "expires_at",
//!   "revoked_at", "state", "source"}]}`: named keys (`source: "store"`) and configured ones
//!   (`source: "config"`, named by fingerprint, always admin).
//! - `POST /api/keys` with `{"name", "scope", "expires"?}` (`expires`: a duration such as
//!   `90d`, `12h`) → 201 with the key, shown only in this answer.
//! - `DELETE /api/keys/<name>` → `{"revoked": name}`.
//!
//! The rules (names, scopes, what a revocation keeps) are in [`crate::auth`] and
//! [`crate::store::keys`].

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{need, ApiError, RequireKey};
use super::extract::{Json, JsonBody, Path};
use super::log::Noted;
use super::{json, App};
use crate::auth::{key_state, Scope};
use crate::store::keys::{KeyError, NamedKey};
use crate::store::time::rfc3339_millis;
use crate::store::unix_millis;

type Answer = Result<Response, ApiError>;

/// A named key as the API and the CLI show it.
pub fn key_json(k: &NamedKey, now: i64) -> serde_json::Value {
    json!({
        "name": k.name,
        "scope": k.scope,
        "created_at": rfc3339_millis(Some(k.created_at)),
        "expires_at": rfc3339_millis(k.expires_at),
        "revoked_at": rfc3339_millis(k.revoked_at),
        "state": key_state(k, now).as_str(),
        "source": "store",
    })
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid(m) => ApiError::BadRequest("bad_key", m),
            KeyError::Exists(_) => ApiError::Conflict("key_exists", e.to_string()),
            KeyError::Unknown(_) => ApiError::NotFound("unknown_key", e.to_string()),
            KeyError::Db(e) => ApiError::Internal(e.into()),
        }
    }
}

pub async fn whoami(key: RequireKey<need::Download>) -> Answer {
    let c = key.caller();
    Ok(json::reply(
        StatusCode::OK,
        &json!({ "name": &*c.name, "scope": c.scope.as_str() }),
    )
    .noted("whoami"))
}

pub async fn list(_: RequireKey<need::Admin>, State(app): State<Arc<App>>) -> Answer {
    let store = app.cache.store().clone();
    let named = tokio::task::spawn_blocking(move || store.list_keys())
        .await?
        .map_err(anyhow::Error::from)?;
    let now = unix_millis(SystemTime::now());
    let mut keys: Vec<_> = app
        .keys
        .configured_names()
        .into_iter()
        .map(|name| {
            json!({
                "name": name, "scope": "admin", "created_at": null, "expires_at": null,
                "revoked_at": null, "state": "active", "source": "config",
            })
        })
        .collect();
    keys.extend(named.iter().map(|k| key_json(k, now)));
    Ok(json::reply(StatusCode::OK, &json!({ "keys": keys })).noted("keys"))
}

/// Unknown fields are refused: a misspelt `expire` would otherwise make a key that never
/// expires.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scope: String,
    #[serde(default)]
    expires: Option<String>,
}

impl JsonBody for NewKey {
    const SHAPE: &'static str =
        r#"{"name": …, "scope": "download|upload|admin", "expires": "90d"}"#;
}

pub async fn create(
    _: RequireKey<need::Admin>,
    State(app): State<Arc<App>>,
    Json(new): Json<NewKey>,
) -> Answer {
    let scope = Scope::parse(&new.scope).ok_or_else(|| {
        ApiError::BadRequest(
            "bad_scope",
            format!("scope is download, upload or admin, not {:?}", new.scope),
        )
    })?;
    let expires = crate::store::retention::parse_expiry(new.expires.as_deref())
        .map_err(|m| ApiError::BadRequest("bad_expiry", m))?;
    let store = app.cache.store().clone();
    let (key, named) = tokio::task::spawn_blocking(move || {
        crate::auth::create_named_key(&store, &new.name, scope, expires)
    })
    .await??;
    app.keys.forget();
    tracing::info!(name = %named.name, scope = %named.scope, "API key created");
    Ok(json::reply(
        StatusCode::CREATED,
        &json!({
            "name": named.name,
            "scope": named.scope,
            "key": key,
            "expires_at": rfc3339_millis(named.expires_at),
        }),
    )
    .noted("key-created"))
}

pub async fn revoke(
    _: RequireKey<need::Admin>,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Answer {
    if app.keys.configured_names().contains(&name) {
        return Err(ApiError::BadRequest(
            "configured_key",
            format!(
                "`{name}` is a configured key: remove its line from [auth] api_keys (or \
                 --api-key-file) and restart symhub"
            ),
        ));
    }
    let store = app.cache.store().clone();
    let now = unix_millis(SystemTime::now());
    let n = name.clone();
    tokio::task::spawn_blocking(move || store.revoke_key(&n, now)).await??;
    app.keys.forget();
    tracing::info!(name = %name, "API key revoked");
    Ok(json::reply(StatusCode::OK, &json!({ "revoked": name })).noted("key-revoked"))
}
