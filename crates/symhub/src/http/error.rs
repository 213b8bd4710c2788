//! The API routes' one error type and its one mapping to HTTP: `{"error": code, "message":
//! text}` with the status below. Symbol paths never use it (a SymSrv client stops probing on
//! a 5xx, so every symbol miss is a plain 404; see [`super::symbols`]).
//!
//! | error | status | `error` |
//! |---|---|---|
//! | no API key / a wrong one / none configured | 401 / 403 / 403 | `unauthorized` / `forbidden` / `uploads_disabled` |
//! | a revoked key / an expired one / too small a scope | 403 / 401 / 403 | `key_revoked` / `key_expired` / `insufficient_scope` |
//! | a change asked by another site's page | 403 | `cross_site` |
//! | a request that cannot be served as sent | 400, 404, 409, 413, 422, 429, 507 | from the service's error |
//! | an upload transaction unknown / deleted / badly described | 404 / 409 / 400 | `unknown_transaction` / `transaction_deleted` / `bad_transaction` |
//! | the shared store's bucket or database unreachable | 503 | `storage_unavailable` |
//! | anything else on the server's side | 500 | `internal` (details only in the log) |
//!
//! "Storage unreachable" is recognized once, by [`crate::store::is_unavailable`], whatever
//! service the error came through.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::json;
use super::log::Noted;
use super::App;
use crate::auth::{Caller, Denied, Scope};
use crate::package::PackageError;
use crate::store::symbols::Origin;
use crate::store::transactions::TransactionError;
use crate::upload::UploadError;

/// Everything an API handler can answer instead of its result.
#[derive(Debug)]
pub enum ApiError {
    Denied(Denied),
    Upload(UploadError),
    Package(PackageError),
    /// An upload transaction refused (unknown, deleted, bad fields), also when an upload
    /// into it carried the refusal up as its storage error.
    Transaction(TransactionError),
    /// The request is malformed: `code` names what (`bad_query`, `bad_name`).
    BadRequest(&'static str, String),
    /// A request body over the route's limit (`too_large`).
    TooLarge(String),
    /// A named thing that does not exist (`unknown_package`).
    NotFound(&'static str, String),
    /// The request conflicts with what exists (`key_exists`).
    Conflict(&'static str, String),
    /// A route asked with a method it does not take.
    MethodNotAllowed(String),
    /// A failure of the server's own: storage, database, a task.
    Internal(anyhow::Error),
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        ApiError::Denied(d)
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        ApiError::Upload(e)
    }
}

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> Self {
        ApiError::Package(e)
    }
}

impl From<TransactionError> for ApiError {
    fn from(e: TransactionError) -> Self {
        match e {
            // Kept whole in an anyhow chain, so an unreachable database still answers 503.
            TransactionError::Db(e) => ApiError::Internal(e.into()),
            e => ApiError::Transaction(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// A transaction's refusal inside a storage error (a commit into a deleted transaction).
fn refused_transaction(e: &anyhow::Error) -> Option<&TransactionError> {
    e.chain()
        .find_map(|c| c.downcast_ref::<TransactionError>())
        .filter(|t| !matches!(t, TransactionError::Db(_)))
}

/// What the client is told: status, code, message. The one exhaustive mapping.
fn classify(e: &ApiError) -> (StatusCode, &'static str, String) {
    use StatusCode as S;
    let transaction = |t: &TransactionError| {
        let (status, code) = match t {
            TransactionError::Invalid(_) => (S::BAD_REQUEST, "bad_transaction"),
            TransactionError::Unknown(_) | TransactionError::NoMatch(_) => {
                (S::NOT_FOUND, "unknown_transaction")
            }
            TransactionError::Deleted(_) => (S::CONFLICT, "transaction_deleted"),
            TransactionError::Expired(_) => (S::CONFLICT, "transaction_expired"),
            TransactionError::Db(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        (status, code, t.to_string())
    };
    if let Some(t) = match e {
        ApiError::Upload(UploadError::Internal(e)) | ApiError::Internal(e) => {
            refused_transaction(e)
        }
        _ => None,
    } {
        return transaction(t);
    }
    let server_side = |e: &anyhow::Error, what: &str| {
        if crate::store::is_unavailable(e) {
            (
                S::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the symbol store's storage is unreachable; retry later".to_owned(),
            )
        } else {
            (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the server could not {what}; see its log"),
            )
        }
    };
    match e {
        ApiError::Denied(d) => {
            let (status, code) = match d {
                Denied::Missing => (S::UNAUTHORIZED, "unauthorized"),
                Denied::Wrong => (S::FORBIDDEN, "forbidden"),
                Denied::Disabled => (S::FORBIDDEN, "uploads_disabled"),
                Denied::Revoked(_) => (S::FORBIDDEN, "key_revoked"),
                Denied::Expired(_) => (S::UNAUTHORIZED, "key_expired"),
                Denied::Scope { .. } => (S::FORBIDDEN, "insufficient_scope"),
                Denied::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "storage_unavailable"),
                Denied::CrossSite => (S::FORBIDDEN, "cross_site"),
            };
            (status, code, d.message())
        }
        ApiError::Upload(u) => {
            let (status, code) = match u {
                UploadError::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "too_large"),
                UploadError::NoSpace => (S::INSUFFICIENT_STORAGE, "insufficient_storage"),
                UploadError::TooManySessions(_) => (S::TOO_MANY_REQUESTS, "too_many_sessions"),
                UploadError::UnknownSession(_) => (S::NOT_FOUND, "unknown_upload"),
                UploadError::BadToken => (S::FORBIDDEN, "bad_upload_token"),
                UploadError::NothingReceived(_) => (S::CONFLICT, "nothing_uploaded"),
                UploadError::NotSym(_) => (S::UNPROCESSABLE_ENTITY, "not_a_symbol_file"),
                UploadError::NotDebugFile(_) => (S::UNPROCESSABLE_ENTITY, "not_a_debug_file"),
                UploadError::Mismatch { .. } => (S::UNPROCESSABLE_ENTITY, "module_mismatch"),
                UploadError::BadRequest(_) => (S::UNPROCESSABLE_ENTITY, "bad_request"),
                UploadError::Body(_) => (S::BAD_REQUEST, "broken_body"),
                UploadError::Internal(e) => return server_side(e, "store the upload"),
            };
            (status, code, u.to_string())
        }
        ApiError::Package(p) => {
            let code = match p {
                PackageError::TooBig(_) | PackageError::ZipTooBig(_) => {
                    return (S::PAYLOAD_TOO_LARGE, "too_large", p.to_string())
                }
                PackageError::Internal(e) => return server_side(e, "store the package"),
                PackageError::ReplaceNeedsAdmin(_) => {
                    return (S::FORBIDDEN, "insufficient_scope", p.to_string())
                }
                PackageError::Duplicates { .. } => "duplicate_keys",
                PackageError::MissingBlob(_) => "missing_blob",
                PackageError::NoIndex | PackageError::BadIndex(_) | PackageError::BadKey { .. } => {
                    "bad_index"
                }
                _ => "bad_package",
            };
            (S::UNPROCESSABLE_ENTITY, code, p.to_string())
        }
        ApiError::Transaction(t) => transaction(t),
        ApiError::BadRequest(code, m) => (S::BAD_REQUEST, code, m.clone()),
        ApiError::TooLarge(m) => (S::PAYLOAD_TOO_LARGE, "too_large", m.clone()),
        ApiError::NotFound(code, m) => (S::NOT_FOUND, code, m.clone()),
        ApiError::Conflict(code, m) => (S::CONFLICT, code, m.clone()),
        ApiError::MethodNotAllowed(m) => (S::METHOD_NOT_ALLOWED, "method_not_allowed", m.clone()),
        ApiError::Internal(e) => server_side(e, "read or change its store"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = classify(&self);
        // The details of a server-side failure go to the log, never to the client.
        let outcome = match (&self, status.is_server_error()) {
            (ApiError::Denied(_), _) => "auth",
            (_, true) => {
                tracing::error!(code, "request failed: {}", detail(&self));
                "error"
            }
            (_, false) => {
                tracing::warn!(code, "request refused: {message}");
                "refused"
            }
        };
        json::error(status, code, message).noted(outcome)
    }
}

fn detail(e: &ApiError) -> String {
    match e {
        ApiError::Upload(u) => u.to_string(),
        ApiError::Package(p) => p.to_string(),
        ApiError::Internal(e) => format!("{e:#}"),
        other => format!("{other:?}"),
    }
}

/// The scope a [`RequireKey`] demands, as a type so a handler's signature says it.
pub trait NeedScope {
    const SCOPE: Scope;
}

/// Scope markers for [`RequireKey`].
pub mod need {
    use super::{NeedScope, Scope};

    pub struct Download;
    pub struct Upload;
    pub struct Admin;

    impl NeedScope for Download {
        const SCOPE: Scope = Scope::Download;
    }
    impl NeedScope for Upload {
        const SCOPE: Scope = Scope::Upload;
    }
    impl NeedScope for Admin {
        const SCOPE: Scope = Scope::Admin;
    }
}

/// Taken by a handler that needs a valid API key of scope `S` or above (`?key=`,
/// `Authorization: Bearer` or `Basic`, `Auth-Token`); without one the request is answered
/// 401/403 before the handler runs. Holds who the caller is.
pub struct RequireKey<S: NeedScope = need::Upload>(pub Caller, PhantomData<S>);

impl<S: NeedScope> RequireKey<S> {
    pub fn caller(&self) -> &Caller {
        &self.0
    }

    /// What a commit by this caller records: its key's name, and the transaction it joins.
    pub fn origin(&self, transaction: Option<i64>) -> Origin {
        Origin::new(transaction, Some(self.0.name.clone()))
    }
}

impl<S: NeedScope> FromRequestParts<Arc<App>> for RequireKey<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        if !parts.method.is_safe() && super::origin::cross_site(&parts.headers) {
            return Err(Denied::CrossSite.into());
        }
        let caller = app
            .keys
            .check(&parts.headers, parts.uri.query(), S::SCOPE)
            .await?;
        Ok(RequireKey(caller, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_503_through_every_service() {
        let down = || anyhow::Error::new(crate::store::Unavailable("bucket down".into()));
        for e in [
            ApiError::Internal(down()),
            ApiError::Upload(UploadError::Internal(down())),
            ApiError::Package(PackageError::Internal(down())),
        ] {
            let (status, code, _) = classify(&e);
            assert_eq!(
                (status, code),
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            );
        }
        let (status, code, message) = classify(&ApiError::Internal(anyhow::anyhow!("disk")));
        assert_eq!(
            (status, code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(!message.contains("disk"), "details stay in the log");
    }

    #[test]
    fn an_upload_into_a_deleted_transaction_is_a_conflict_not_a_server_error() {
        let refused = anyhow::Error::new(TransactionError::Deleted(7)).context("commit");
        let (status, code, message) = classify(&ApiError::Upload(UploadError::Internal(refused)));
        assert_eq!(
            (status, code),
            (StatusCode::CONFLICT, "transaction_deleted")
        );
        assert!(message.contains('7'), "{message}");
        let (status, _, _) = classify(&ApiError::from(TransactionError::Unknown(8)));
        assert_eq!(status, StatusCode::NOT_FOUND);
        let down = TransactionError::Db(crate::store::db::DbError::Unreachable("down".into()));
        let (status, _, _) = classify(&ApiError::from(down));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
