//! Upload transactions, as `symstore add /t product /v version /c comment` keeps them: an
//! upload run opens one ([`SymbolStore::begin_transaction`]), every file it commits records
//! its keys and bytes in the ledger (`transaction_keys`) in the same SQL transaction that
//! writes the key rows, and the run can later be deleted as a whole.
//!
//! **Deletion rule.** A key of the transaction loses its `symbols` row only if that row
//! still points at the bytes this transaction recorded for it (a later upload that replaced
//! the key wins), no other live transaction recorded the same bytes under the same key, and
//! those bytes were never uploaded outside a transaction (`pinned`: a plain sym-upload or
//! `PUT /api/files` is permanent, and a run that merely found the file there, or an upload
//! key that names it in `/api/files/missing`, cannot take it away).
//! All of its keys go in one SQL transaction, so readers see the run whole or gone. Then
//! each blob it recorded is garbage-collected if no key row, package or claim (an upload in
//! progress) still uses it. A deleted transaction stays listed with `state = deleted`, its
//! ledger kept as history: ids are never reused and `symhub transactions` shows what went.
//!
//! **Concurrency.** SQLite writers are serialized (`BEGIN IMMEDIATE`). On PostgreSQL the
//! ledger has an advisory lock: commits into a transaction hold it shared, a deletion holds
//! it exclusively, so a deletion's single `DELETE` statement sees every ledger row a
//! committed upload wrote, and an upload never records keys into a transaction being
//! deleted. A commit of other bytes racing a deletion is safe without the lock: the row is
//! deleted only where `sha256` still matches, in the same statement.

use std::time::SystemTime;

use symhub_core::SymbolKey;

use super::db::{p, Conn, DbError, DbResult, Row};
use super::symbols::{bump, from_millis, SymbolStore};
use super::unix_millis;

/// Longest product and version names, uploader and comment, in bytes: generous for any
/// real name, small enough that a listing stays a listing.
pub const MAX_NAME: usize = 200;
pub const MAX_COMMENT: usize = 2000;

/// The PostgreSQL advisory lock of the ledger (the schema's lock is 7368790).
const LEDGER_LOCK: i64 = 7_368_791;

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("{0}")]
    Invalid(String),
    #[error("no transaction {0}")]
    Unknown(i64),
    #[error("transaction {0} was deleted")]
    Deleted(i64),
    #[error("transaction {0} has expired: retention removes it and what only it holds")]
    Expired(i64),
    #[error("no live transaction of {0}")]
    NoMatch(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

/// One transaction, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransactionInfo {
    pub id: i64,
    pub product: String,
    pub version: String,
    pub comment: String,
    pub uploader: String,
    #[serde(serialize_with = "super::time::serialize")]
    pub created_at: SystemTime,
    /// `active` or `deleted`.
    pub state: String,
    #[serde(serialize_with = "super::time::serialize_opt")]
    pub deleted_at: Option<SystemTime>,
    /// When retention removes it ([`super::retention`]); `None`: kept until deleted.
    #[serde(serialize_with = "super::time::serialize_opt")]
    pub expires_at: Option<SystemTime>,
    /// Keys recorded (a file committed under three keys counts three).
    pub key_count: u64,
    /// Sum of the sizes of those keys' files.
    pub bytes: u64,
}

/// One key a transaction recorded, with the bytes it put there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransactionKey {
    /// Normalized (lowercase).
    #[serde(skip)]
    pub key: String,
    #[serde(rename = "key")]
    pub display: String,
    pub sha256: String,
    pub size: u64,
}

/// What a deletion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeleteReport {
    pub id: i64,
    /// Keys whose rows were removed: they answer 404 now (or a package's file).
    pub keys_removed: u64,
    /// Keys left alone: replaced since, recorded by another live transaction, or never
    /// given a row (a package already served the same bytes).
    pub keys_kept: u64,
    /// Blobs deleted because nothing uses them any more.
    pub blobs_removed: u64,
}

/// The columns of [`TransactionInfo`], in the order [`info`] reads them.
macro_rules! info_select {
    () => {
        "SELECT t.id, t.product, t.version, t.comment, t.uploader, t.created_at, t.state,
                t.deleted_at, t.expires_at,
                (SELECT COUNT(*) FROM transaction_keys k WHERE k.id = t.id),
                (SELECT CAST(COALESCE(SUM(k.size), 0) AS BIGINT) FROM transaction_keys k
                 WHERE k.id = t.id)
         FROM transactions t "
    };
}

fn info(r: &Row) -> TransactionInfo {
    TransactionInfo {
        id: r.int(0),
        product: r.text(1),
        version: r.text(2),
        comment: r.text(3),
        uploader: r.text(4),
        created_at: from_millis(r.int(5)),
        state: r.text(6),
        deleted_at: r.opt_int(7).map(from_millis),
        expires_at: r.opt_int(8).map(from_millis),
        key_count: r.int(9) as u64,
        bytes: r.int(10) as u64,
    }
}

/// Checks one text field: `limit` bytes at most, no control characters (a comment may
/// hold line breaks and tabs).
fn check_field(what: &str, value: &str, limit: usize, multiline: bool) -> Result<(), String> {
    if value.len() > limit {
        return Err(format!("{what} is longer than {limit} bytes"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(format!("{what} holds control characters"));
    }
    Ok(())
}

/// Takes the ledger lock for this SQL transaction (see the module notes). A no-op on SQLite,
/// whose write transactions are serialized already.
fn lock_ledger(conn: &mut Conn, exclusive: bool) -> DbResult<()> {
    if conn.is_postgres() {
        if exclusive {
            conn.query("SELECT pg_advisory_xact_lock(?1)", p![LEDGER_LOCK])?;
        } else {
            conn.query("SELECT pg_advisory_xact_lock_shared(?1)", p![LEDGER_LOCK])?;
        }
    }
    Ok(())
}

const STATE: &str = "SELECT state FROM transactions WHERE id = ?1";

/// Whether transaction `id`, whose `state` row is `row`, exists and is live.
fn judge(id: i64, row: Option<Row>) -> Result<(), TransactionError> {
    match row.map(|r| r.text(0)).as_deref() {
        None => Err(TransactionError::Unknown(id)),
        Some("active") => Ok(()),
        Some(_) => Err(TransactionError::Deleted(id)),
    }
}

/// Whether transaction `id` exists and is live, in `conn`'s SQL transaction.
fn state(conn: &mut Conn, id: i64) -> DbResult<Result<(), TransactionError>> {
    Ok(judge(id, conn.query_opt(STATE, p![id])?))
}

/// Whether transaction `id` takes keys: live, and not past its `expires_at` (files put in
/// it then would be removed by the next retention pass, after a 200).
const TAKES: &str = "SELECT state, expires_at FROM transactions WHERE id = ?1";

fn judge_commit(id: i64, row: Option<Row>) -> Result<(), TransactionError> {
    let expired = row
        .as_ref()
        .and_then(|r| r.opt_int(1))
        .is_some_and(|at| at <= unix_millis(SystemTime::now()));
    judge(id, row)?;
    match expired {
        true => Err(TransactionError::Expired(id)),
        false => Ok(()),
    }
}

/// First thing in a commit's SQL transaction: takes the ledger lock (shared) and checks that
/// transaction `id` takes keys. `Err` inside: refused, and nothing was written.
pub(super) fn open_for_commit(conn: &mut Conn, id: i64) -> DbResult<Result<(), TransactionError>> {
    lock_ledger(conn, false)?;
    Ok(judge_commit(id, conn.query_opt(TAKES, p![id])?))
}

/// Records that transaction `id` put `sha256` under `keys`. Called inside the SQL
/// transaction of [`SymbolStore::commit_in`], after [`open_for_commit`], so the ledger and
/// the key rows change together. A key recorded twice by one transaction keeps its last
/// bytes (those the run left there).
pub(super) fn record_transaction_keys(
    conn: &mut Conn,
    id: i64,
    keys: &[SymbolKey],
    sha256: &str,
    size: u64,
) -> DbResult<()> {
    for key in keys {
        conn.execute(
            "INSERT INTO transaction_keys (id, key, display, sha256, size)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id, key) DO UPDATE SET display = excluded.display,
             sha256 = excluded.sha256, size = excluded.size",
            p![id, key.normalized(), key.as_str(), sha256, size],
        )?;
    }
    Ok(())
}

impl SymbolStore {
    /// Opens a transaction for an upload run; returns its id. `product` is required;
    /// product and version are trimmed. `uploader`: who runs it (a key's fingerprint, a
    /// local user name).
    pub fn begin_transaction(
        &self,
        product: &str,
        version: &str,
        comment: &str,
        uploader: &str,
    ) -> Result<i64, TransactionError> {
        self.begin_transaction_expiring(product, version, comment, uploader, None)
    }

    /// [`Self::begin_transaction`] for a run that retention removes after `expires_at`
    /// (unix ms; [`super::retention`]).
    pub fn begin_transaction_expiring(
        &self,
        product: &str,
        version: &str,
        comment: &str,
        uploader: &str,
        expires_at: Option<i64>,
    ) -> Result<i64, TransactionError> {
        let (product, version) = (product.trim(), version.trim());
        if product.is_empty() {
            return Err(TransactionError::Invalid(
                "a product name is required".into(),
            ));
        }
        check_field("the product", product, MAX_NAME, false)
            .and_then(|_| check_field("the version", version, MAX_NAME, false))
            .and_then(|_| check_field("the uploader", uploader, MAX_NAME, false))
            .and_then(|_| check_field("the comment", comment, MAX_COMMENT, true))
            .map_err(TransactionError::Invalid)?;
        let row = self.db.query_opt(
            "INSERT INTO transactions
                 (product, version, comment, uploader, created_at, state, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6) RETURNING id",
            p![
                product,
                version,
                comment,
                uploader,
                unix_millis(SystemTime::now()),
                expires_at
            ],
        )?;
        Ok(row.map_or(0, |r| r.int(0)))
    }

    /// One transaction, live or deleted.
    pub fn transaction(&self, id: i64) -> DbResult<Option<TransactionInfo>> {
        Ok(self
            .db
            .query_opt(concat!(info_select!(), "WHERE t.id = ?1"), p![id])?
            .map(|r| info(&r)))
    }

    /// Transactions (live and deleted), oldest first, of `product` and `version` when given.
    pub fn list_transactions(
        &self,
        product: Option<&str>,
        version: Option<&str>,
    ) -> DbResult<Vec<TransactionInfo>> {
        Ok(self
            .db
            .query(
                concat!(
                    info_select!(),
                    // Cast: PostgreSQL cannot type a parameter only tested for NULL.
                    "WHERE (CAST(?1 AS TEXT) IS NULL OR t.product = ?1)
                     AND (CAST(?2 AS TEXT) IS NULL OR t.version = ?2)
                     ORDER BY t.id"
                ),
                p![product.map(str::trim), version.map(str::trim)],
            )?
            .iter()
            .map(info)
            .collect())
    }

    /// A page of the keys transaction `id` recorded, in key order after `after`.
    pub fn transaction_keys(
        &self,
        id: i64,
        after: &str,
        limit: usize,
    ) -> DbResult<Vec<TransactionKey>> {
        Ok(self
            .db
            .query(
                "SELECT key, display, sha256, size FROM transaction_keys
                 WHERE id = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
                p![id, after, limit as i64],
            )?
            .iter()
            .map(|r| TransactionKey {
                key: r.text(0),
                display: r.text(1),
                sha256: r.text(2),
                size: r.int(3) as u64,
            })
            .collect())
    }

    /// Refuses early, before any byte is stored, a commit into a transaction that does not
    /// take keys. The commit checks again under the lock.
    pub fn check_transaction(&self, id: i64) -> anyhow::Result<()> {
        Ok(judge_commit(id, self.db.query_opt(TAKES, p![id])?)?)
    }

    /// Live transactions that recorded `sha256` under `key` (normalized).
    pub fn transactions_holding(&self, key: &str, sha256: &str) -> DbResult<Vec<i64>> {
        Ok(self
            .db
            .query(
                "SELECT tk.id FROM transaction_keys tk JOIN transactions t ON t.id = tk.id
                 WHERE tk.key = ?1 AND tk.sha256 = ?2 AND t.state = 'active'",
                p![key, sha256],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect())
    }

    /// Bytes `sha256` already under every key (a commit found them there, or a client asked
    /// whether the server holds its file): records the keys in transaction `id` — the run
    /// did add them, as far as its user is concerned. False if a key does not hold those
    /// bytes (any more: a deletion or another upload won the race); a committer then
    /// commits for real.
    pub fn record_held(
        &self,
        id: i64,
        keys: &[SymbolKey],
        sha256: &str,
        size: u64,
    ) -> anyhow::Result<bool> {
        Ok(self.record_held_many(id, &[(keys, sha256, size)])?[0])
    }

    /// [`Self::record_held`] of many files in one database transaction (a re-run of a build
    /// directory holds thousands): for each, whether it was recorded.
    pub fn record_held_many(
        &self,
        id: i64,
        files: &[(&[SymbolKey], &str, u64)],
    ) -> anyhow::Result<Vec<bool>> {
        let recorded = self.db.tx(|tx| {
            if let Err(e) = open_for_commit(tx, id)? {
                return Ok(Err(e));
            }
            let mut done = Vec::with_capacity(files.len());
            'files: for &(keys, sha256, size) in files {
                for k in keys {
                    // An upload's row: a package's mapping can go with its package, and
                    // the run would lose a file it ships (`get_uploaded`).
                    let still = tx.query_opt(
                        "SELECT 1 FROM symbols WHERE key = ?1 AND sha256 = ?2",
                        p![k.normalized(), sha256],
                    )?;
                    if still.is_none() {
                        done.push(false);
                        continue 'files;
                    }
                }
                record_transaction_keys(tx, id, keys, sha256, size)?;
                done.push(true);
            }
            Ok(Ok(done))
        })?;
        Ok(recorded?)
    }

    /// A blob put in place for a commit that was then refused: deleted at once unless
    /// something else uses it, with its crash note.
    pub(super) fn abandon_new_blob(&self, sha256: &str) {
        if self.collect_blob(sha256) {
            let _ = self
                .db
                .execute("DELETE FROM upload_new_blobs WHERE sha256 = ?1", p![sha256]);
        }
    }

    /// Deletes transaction `id` by the rule in the module notes.
    pub fn delete_transaction(&self, id: i64) -> Result<DeleteReport, TransactionError> {
        let now = unix_millis(SystemTime::now());
        let done = self.db.tx(|tx| {
            lock_ledger(tx, true)?;
            if let Err(e) = state(tx, id)? {
                return Ok(Err(e));
            }
            let recorded = tx
                .query_opt(
                    "SELECT COUNT(*) FROM transaction_keys WHERE id = ?1",
                    p![id],
                )?
                .map_or(0, |r| r.int(0) as u64);
            // One statement decides and deletes, so a row another upload rewrites meanwhile
            // is judged by the bytes it then has.
            let removed = tx
                .query(
                    "DELETE FROM symbols
                     WHERE key IN (SELECT key FROM transaction_keys WHERE id = ?1)
                     AND sha256 = (SELECT tk.sha256 FROM transaction_keys tk
                                   WHERE tk.id = ?1 AND tk.key = symbols.key)
                     AND pinned = 0
                     AND NOT EXISTS (
                         SELECT 1 FROM transaction_keys o
                         JOIN transactions t ON t.id = o.id
                         WHERE o.key = symbols.key AND o.sha256 = symbols.sha256
                         AND o.id <> ?1 AND t.state = 'active')
                     RETURNING key",
                    p![id],
                )?
                .len() as u64;
            let blobs: Vec<String> = tx
                .query(
                    "SELECT DISTINCT sha256 FROM transaction_keys WHERE id = ?1",
                    p![id],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            // Noted with the rows' removal: after a crash before the collection below,
            // start-up (`recover_uploads`) collects them.
            for sha in &blobs {
                tx.execute("INSERT INTO upload_new_blobs (sha256) VALUES (?1)", p![sha])?;
            }
            tx.execute(
                "UPDATE transactions SET state = 'deleted', deleted_at = ?2 WHERE id = ?1",
                p![id, now],
            )?;
            bump(tx)?;
            Ok(Ok((recorded, removed, blobs)))
        })?;
        let (recorded, removed, blobs) = done?;
        // Which keys went is not worth a list: deletions are rare, and every instance
        // forgets everything on a change from elsewhere anyway.
        self.changes.publish(&super::StoreChange::Any);
        let mut blobs_removed = 0;
        let mut collected = Vec::new();
        for sha in blobs {
            let used = self.db.query_opt(
                "SELECT 1 FROM symbols WHERE sha256 = ?1
                 UNION ALL SELECT 1 FROM package_keys WHERE sha256 = ?1 LIMIT 1",
                p![&sha],
            );
            // A claimed blob keeps its note: an upload is about to use it, and recovery
            // looks again later.
            if self.collect_blob(&sha) {
                blobs_removed += matches!(used, Ok(None)) as u64;
                collected.push(sha);
            }
        }
        // In one SQL transaction: one fsync, not one per blob.
        self.db.tx(|tx| {
            for sha in &collected {
                tx.execute("DELETE FROM upload_new_blobs WHERE sha256 = ?1", p![sha])?;
            }
            Ok(())
        })?;
        tracing::info!(
            transaction = id,
            keys_removed = removed,
            blobs_removed,
            "transaction deleted"
        );
        Ok(DeleteReport {
            id,
            keys_removed: removed,
            keys_kept: recorded - removed,
            blobs_removed,
        })
    }

    /// Deletes every live transaction of `product` (and `version`, when given), oldest
    /// first. None matching is an error, so a typo does not look like success.
    pub fn delete_transactions_of(
        &self,
        product: &str,
        version: Option<&str>,
    ) -> Result<Vec<DeleteReport>, TransactionError> {
        let live: Vec<i64> = self
            .list_transactions(Some(product), version)?
            .into_iter()
            .filter(|t| t.state == "active")
            .map(|t| t.id)
            .collect();
        if live.is_empty() {
            return Err(TransactionError::NoMatch(match version {
                Some(v) => format!("product `{}` version `{}`", product.trim(), v.trim()),
                None => format!("product `{}`", product.trim()),
            }));
        }
        let mut reports = Vec::new();
        for id in live {
            match self.delete_transaction(id) {
                Ok(r) => reports.push(r),
                // Deleted meanwhile by someone else: what was asked is done.
                Err(TransactionError::Deleted(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests;
