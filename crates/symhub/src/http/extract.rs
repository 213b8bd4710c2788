//! axum's extractors for the `/api/…` routes, refusing with the API's JSON error
//! ([`ApiError`]) where axum's own answer plain text ("Failed to deserialize query string…",
//! "length limit exceeded"): a client of the API reads every 4xx as `{"error", "message"}`,
//! whichever part of the request was wrong. The status stays axum's (413 for a body over
//! the limit, 400 for a query or path parameter that does not parse).
//!
//! The Breakpad and Tecken routes are not `/api/` and keep what their clients expect.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// An axum extractor's refusal as the API's; `code` names the part of the request.
fn refused(status: StatusCode, code: &'static str, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge("the request body is larger than this route takes".into())
    } else if status.is_client_error() {
        ApiError::BadRequest(code, text)
    } else {
        // A route whose parameters do not fit its handler: the server's own mistake.
        ApiError::Internal(anyhow::anyhow!("{code}: {text}"))
    }
}

/// axum's `Path`, refused as `bad_path` (a segment that is not UTF-8 once decoded).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(refused(e.status(), "bad_path", e.body_text())),
        }
    }
}

/// axum's `Query`, refused as `bad_query` (`?limit=x`).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(refused(e.status(), "bad_query", e.body_text())),
        }
    }
}

/// A request body the API reads as JSON.
pub trait JsonBody: DeserializeOwned {
    /// What the body should look like, shown in the refusal of one that does not parse.
    const SHAPE: &'static str;
}

/// A JSON body within axum's default body limit (413 `too_large` past it), refused as
/// `bad_body` with its expected [`JsonBody::SHAPE`]. No `Content-Type` is demanded: `curl -d`
/// sends its own.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: JsonBody,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| refused(e.status(), "broken_body", e.body_text()))?;
        serde_json::from_slice(&body)
            .map(Json)
            .map_err(|e| ApiError::BadRequest("bad_body", format!("expected {}: {e}", T::SHAPE)))
    }
}
