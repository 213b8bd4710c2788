//! Named API keys (`api_keys`): a name, a scope, an optional expiry and a revocation time,
//! stored in the store's database so every instance of a shared store knows the same keys.
//! Only the key's SHA-256 is kept; [`crate::auth`] hashes what a request presents and looks
//! the digest up here. A revoked key keeps its row, so its name is never given to another
//! key and the symbols it uploaded stay attributable.

use super::db::{p, DbError, DbResult, Row};
use super::symbols::{bump, SymbolStore};

/// Longest key name, in bytes.
pub const MAX_KEY_NAME: usize = 64;

/// One named key, as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub name: String,
    /// `download`, `upload` or `admin` ([`crate::auth::Scope`]).
    pub scope: String,
    /// Unix ms.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("a key named `{0}` exists already, whatever the case (names are never reused, even once revoked)")]
    Exists(String),
    #[error("no key named `{0}`")]
    Unknown(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

/// A key name: 1–64 of ASCII letters, digits, `-`, `_`, `.`, `@`, beginning with a letter or
/// digit, so it can stand in a log line, a URL path segment (never `.` or `..`) and a table
/// cell as it is. Names are unique whatever their case.
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    let ok = name.len() <= MAX_KEY_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "a key name is 1 to {MAX_KEY_NAME} letters, digits, `-`, `_`, `.` or `@`, \
             beginning with a letter or digit, not {:?}",
            name.chars().take(80).collect::<String>()
        )))
    }
}

fn named(r: &Row) -> NamedKey {
    NamedKey {
        name: r.text(0),
        scope: r.text(1),
        created_at: r.int(2),
        expires_at: r.opt_int(3),
        revoked_at: r.opt_int(4),
    }
}

impl SymbolStore {
    /// Records a new key by its SHA-256 (hex). Blocking.
    pub fn create_key(&self, key: &NamedKey, sha256: &str) -> Result<(), KeyError> {
        check_key_name(&key.name)?;
        let inserted = self.db.tx(|tx| {
            let n = tx.execute(
                "INSERT INTO api_keys (name, sha256, scope, created_at, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL) ON CONFLICT DO NOTHING",
                p![
                    key.name.as_str(),
                    sha256,
                    key.scope.as_str(),
                    key.created_at,
                    key.expires_at
                ],
            )?;
            // Other instances drop what they remember of keys on a change.
            bump(tx)?;
            Ok(n)
        })?;
        if inserted == 0 {
            return Err(KeyError::Exists(key.name.clone()));
        }
        Ok(())
    }

    /// The key whose SHA-256 (hex) is `sha256`, revoked and expired ones included.
    pub fn key_by_hash(&self, sha256: &str) -> DbResult<Option<NamedKey>> {
        Ok(self
            .db
            .query_opt(
                "SELECT name, scope, created_at, expires_at, revoked_at FROM api_keys
                 WHERE sha256 = ?1",
                p![sha256],
            )?
            .as_ref()
            .map(named))
    }

    /// Every key, by name.
    pub fn list_keys(&self) -> DbResult<Vec<NamedKey>> {
        Ok(self
            .db
            .query(
                "SELECT name, scope, created_at, expires_at, revoked_at FROM api_keys
                 ORDER BY name",
                p![],
            )?
            .iter()
            .map(named)
            .collect())
    }

    /// Whether any key could still be used at `now` (unix ms): with none, and none in the
    /// config, uploads are disabled rather than refused.
    pub fn has_usable_keys(&self, now: i64) -> DbResult<bool> {
        Ok(self
            .db
            .query_opt(
                "SELECT 1 FROM api_keys WHERE revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?1) LIMIT 1",
                p![now],
            )?
            .is_some())
    }

    /// Revokes key `name` (any case) at `now` (unix ms). Revoking a revoked key changes
    /// nothing.
    pub fn revoke_key(&self, name: &str, now: i64) -> Result<NamedKey, KeyError> {
        let row = self.db.tx(|tx| {
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?2
                 WHERE lower(name) = lower(?1) AND revoked_at IS NULL",
                p![name, now],
            )?;
            bump(tx)?;
            tx.query_opt(
                "SELECT name, scope, created_at, expires_at, revoked_at FROM api_keys
                 WHERE lower(name) = lower(?1)",
                p![name],
            )
        })?;
        row.as_ref()
            .map(named)
            .ok_or_else(|| KeyError::Unknown(name.to_owned()))
    }
}
