//! Blob claims: a writer about to point keys at an existing blob holds it back from garbage
//! collection until its rows are written, so a blob found "already there" cannot vanish in
//! between. In this process a counted map; with a shared database also a `blob_claims` row
//! with a lease, for the other instances.

use std::time::{Duration, SystemTime};

use super::db::{p, DbError, DbResult};
use super::symbols::SymbolStore;
use super::unix_millis;

/// How long a shared blob claim protects a blob if its writer dies without releasing it.
const CLAIM_LEASE: Duration = Duration::from_secs(3600);

/// Holds a blob back from garbage collection while it lives.
pub struct BlobClaim<'a> {
    store: &'a SymbolStore,
    sha256: String,
    shared_id: Option<String>,
}

impl Drop for BlobClaim<'_> {
    fn drop(&mut self) {
        let mut claims = self.store.claims();
        if let Some(n) = claims.get_mut(&self.sha256) {
            *n -= 1;
            if *n == 0 {
                claims.remove(&self.sha256);
            }
        }
        drop(claims);
        if let Some(id) = &self.shared_id {
            // Best effort: a claim left behind only delays collection until its lease ends.
            let _ = self
                .store
                .db
                .execute("DELETE FROM blob_claims WHERE id = ?1", p![id]);
        }
    }
}

impl SymbolStore {
    fn claims(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `sha256` from being garbage-collected until the claim is dropped. With a shared
    /// database the claim is written there, under the blob's lock, so collection by another
    /// instance either ran before (and the blob is gone: the writer puts it again) or sees
    /// the claim.
    pub fn claim(&self, sha256: &str) -> DbResult<BlobClaim<'_>> {
        *self.claims().entry(sha256.to_owned()).or_default() += 1;
        let mut claim = BlobClaim {
            store: self,
            sha256: sha256.to_owned(),
            shared_id: None,
        };
        if self.db.is_postgres() {
            let id = hex::encode(rand::random::<[u8; 12]>());
            let until = unix_millis(SystemTime::now() + CLAIM_LEASE);
            self.db.tx(|tx| {
                tx.lock_blob(sha256)?;
                tx.execute(
                    "INSERT INTO blob_claims (sha256, id, until) VALUES (?1, ?2, ?3)",
                    p![sha256, &id, until],
                )
            })?;
            claim.shared_id = Some(id);
        }
        Ok(claim)
    }

    /// Deletes a blob no key points at (neither an upload's nor a package's) and nobody has
    /// claimed. Returns false if it was claimed (and so kept). The claims lock (and with a
    /// shared database, the blob's lock) is held from the check to the deletion.
    pub fn collect_blob(&self, sha256: &str) -> bool {
        let claims = self.claims();
        if claims.contains_key(sha256) {
            return false;
        }
        let now = unix_millis(SystemTime::now());
        let r = self.db.tx(|tx| {
            tx.lock_blob(sha256)?;
            let claimed = tx
                .query_opt(
                    "SELECT 1 FROM blob_claims WHERE sha256 = ?1 AND until > ?2 LIMIT 1",
                    p![sha256, now],
                )?
                .is_some();
            let used = tx
                .query_opt(
                    "SELECT 1 FROM symbols WHERE sha256 = ?1
                     UNION ALL SELECT 1 FROM package_keys WHERE sha256 = ?1 LIMIT 1",
                    p![sha256],
                )?
                .is_some();
            if !claimed && !used {
                self.blobs
                    .remove(sha256)
                    .map_err(|e| DbError::Bucket(e.to_string()))?;
            }
            Ok(!claimed)
        });
        drop(claims);
        r.unwrap_or_else(|e| {
            tracing::warn!(blob = sha256, "cannot remove an unused blob: {e}");
            false
        })
    }
}
