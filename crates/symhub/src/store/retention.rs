//! Retention: what leaves the store without a person deleting a whole run by hand.
//! - An upload transaction may carry an expiry (`symhub upload --expires 28d`, or
//!   `"expires"` in `POST /api/transactions`), as Tecken's "try" uploads do; once past it,
//!   [`SymbolStore::remove_expired`] deletes it by the transaction deletion rule
//!   ([`super::transactions`]): keys whose bytes another live transaction recorded, or
//!   that a later upload replaced, stay, and a blob goes only when nothing uses it. The
//!   server runs it on a schedule (`retention.interval`); on a shared store every instance
//!   does, and a run another instance deleted first is skipped.
//! - One stored key can be deleted (`DELETE /api/symbols/<key>`, admin scope):
//!   [`SymbolStore::delete_symbol`].

use std::time::SystemTime;

use super::db::{p, DbResult};
use super::symbols::{bump, SymbolStore};
use super::transactions::{DeleteReport, TransactionError};
use super::unix_millis;

/// The longest expiry: a century, so every expiry is a date every client can print.
pub const MAX_EXPIRY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// An expiry as operators write it: `28d`, `12h`, `90d`, `1w` (humantime), from one second
/// to [`MAX_EXPIRY`]; or nothing (never expires). Used by transactions and named keys.
pub fn parse_expiry(s: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match humantime::parse_duration(s) {
        Ok(d) if d < std::time::Duration::from_secs(1) => {
            Err(format!("expires: {s:?} is less than a second"))
        }
        Ok(d) if d > MAX_EXPIRY => Err(format!(
            "expires: {s:?} is more than 100 years; leave it out for no expiry"
        )),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(format!(
            "expires: {s:?} is not a duration such as 28d or 12h ({e})"
        )),
    }
}

/// `now + expires_in` in unix ms.
pub fn expires_at(expires_in: Option<std::time::Duration>) -> Option<i64> {
    expires_in.map(|d| unix_millis(SystemTime::now()).saturating_add(d.as_millis() as i64))
}

/// What a deletion of one key did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyDeleted {
    /// As stored (display form).
    pub deleted: String,
    pub sha256: String,
    /// Whether its bytes went too (nothing else used them).
    pub blob_removed: bool,
}

impl SymbolStore {
    /// Live transactions whose expiry is at or before `now` (unix ms), oldest first.
    pub fn expired_transactions(&self, now: i64) -> DbResult<Vec<i64>> {
        Ok(self
            .db
            .query(
                "SELECT id FROM transactions
                 WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ?1
                 ORDER BY id",
                p![now],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect())
    }

    /// Deletes every expired transaction. Blocking.
    pub fn remove_expired(&self) -> Result<Vec<DeleteReport>, TransactionError> {
        let mut reports = Vec::new();
        for id in self.expired_transactions(unix_millis(SystemTime::now()))? {
            match self.delete_transaction(id) {
                Ok(r) => {
                    tracing::info!(
                        transaction = id,
                        keys_removed = r.keys_removed,
                        keys_kept = r.keys_kept,
                        blobs_removed = r.blobs_removed,
                        "expired transaction removed"
                    );
                    reports.push(r)
                }
                // Another instance got there first.
                Err(TransactionError::Deleted(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reports)
    }

    /// Deletes stored key `key` (normalized); its blob goes if nothing else uses it. `None`:
    /// no such stored key. Transactions that recorded it keep their ledger rows as history.
    pub fn delete_symbol(&self, key: &str) -> DbResult<Option<KeyDeleted>> {
        let row = self.db.tx(|tx| {
            let row = tx.query_opt(
                "DELETE FROM symbols WHERE key = ?1 RETURNING display, sha256",
                p![key],
            )?;
            if let Some(r) = &row {
                // Noted with the row's removal: after a crash before the collection below,
                // start-up (`recover_uploads`) collects it.
                tx.execute(
                    "INSERT INTO upload_new_blobs (sha256) VALUES (?1)",
                    p![&r.text(1)],
                )?;
                bump(tx)?;
            }
            Ok(row)
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (shown, sha256) = (row.text(0), row.text(1));
        if let Ok(parsed) = symhub_core::SymbolKey::parse_path(&shown) {
            self.changes.publish(&super::StoreChange::Keys {
                keys: std::slice::from_ref(&parsed),
                code: None,
            });
        } else {
            self.changes.publish(&super::StoreChange::Any);
        }
        let used = self
            .db
            .query_opt(
                "SELECT 1 FROM symbols WHERE sha256 = ?1
                 UNION ALL SELECT 1 FROM package_keys WHERE sha256 = ?1 LIMIT 1",
                p![&sha256],
            )?
            .is_some();
        let collected = self.collect_blob(&sha256);
        if collected {
            self.db.execute(
                "DELETE FROM upload_new_blobs WHERE sha256 = ?1",
                p![&sha256],
            )?;
        }
        let blob_removed = collected && !used;
        tracing::info!(key = shown.as_str(), blob_removed, "stored key deleted");
        Ok(Some(KeyDeleted {
            deleted: shown,
            sha256,
            blob_removed,
        }))
    }
}
