//! The package tables of the symbol store: which SSQP zip packages are live and which keys
//! each maps to which blob.
//!
//! A package's rows are written while it is `ingesting`, invisible to lookups (they join on
//! `state = 'active'`), then one transaction makes it `active` — and, for a replace, the
//! old package of that name `removing` — so a package appears or changes all at once.
//! Rows of packages that are not active are deleted in batches afterwards, or at start-up
//! after a crash. Between packages defining one key, explicit mappings win over derived
//! ones, then the lowest `priority` (the package added first; a replace keeps its
//! predecessor's priority), so the answer is stable across restarts.

use std::time::{Duration, SystemTime};

use super::db::{p, DbResult, Row};
use super::symbols::{bump, from_millis, SymbolStore};
use super::unix_millis;

/// How [`SymbolStore::activate_package`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Live; no package had its name.
    Added,
    /// Live in place of the package with this `seq`, which is now to be dropped.
    Replaced(i64),
    /// A package of that name is live and could not be replaced: nothing changed.
    Refused,
}

/// One key → blob mapping of a package.
#[derive(Debug, Clone)]
pub struct PackageKey {
    pub key: String,
    pub display: String,
    pub sha256: String,
    pub size: u64,
    pub derived: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub size: u64,
    pub key_count: u64,
    pub blob_bytes: u64,
    #[serde(serialize_with = "super::time::serialize")]
    pub added_at: SystemTime,
}

fn info(r: &Row, at: usize) -> PackageInfo {
    PackageInfo {
        name: r.text(at),
        size: r.int(at + 1) as u64,
        key_count: r.int(at + 2) as u64,
        blob_bytes: r.int(at + 3) as u64,
        added_at: from_millis(r.int(at + 4)),
    }
}

/// How long an ingest may go without progress before another instance (or a restart) takes
/// it for abandoned and removes what it wrote.
pub const INGEST_LEASE: Duration = Duration::from_secs(600);

fn lease() -> i64 {
    unix_millis(SystemTime::now() + INGEST_LEASE)
}

const BATCH: usize = 10_000;

impl SymbolStore {
    /// Registers a package being ingested; returns its sequence number.
    pub fn begin_package(&self, name: &str, size: u64) -> DbResult<i64> {
        let row = self.db.query_opt(
            "INSERT INTO packages (name, state, priority, added_at, size, key_count, blob_bytes, lease_until)
             VALUES (?1, 'ingesting', 0, ?2, ?3, 0, 0, ?4) RETURNING seq",
            p![name, unix_millis(SystemTime::now()), size, lease()],
        )?;
        let seq = row.map_or(0, |r| r.int(0));
        self.db
            .execute("UPDATE packages SET priority = ?1 WHERE seq = ?1", p![seq])?;
        Ok(seq)
    }

    /// Adds mappings of an ingesting package. Returns the keys it already had (duplicates).
    pub fn add_package_keys(&self, seq: i64, keys: &[PackageKey]) -> DbResult<Vec<String>> {
        let mut duplicates = Vec::new();
        for batch in keys.chunks(BATCH) {
            self.db.tx(|tx| {
                for k in batch {
                    let n = tx.execute(
                        "INSERT INTO package_keys (key, seq, display, sha256, size, derived)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                        p![&k.key, seq, &k.display, &k.sha256, k.size, k.derived],
                    )?;
                    if n == 0 {
                        duplicates.push(k.display.clone());
                    }
                }
                tx.execute(
                    "UPDATE packages SET lease_until = ?2 WHERE seq = ?1",
                    p![seq, lease()],
                )
            })?;
        }
        Ok(duplicates)
    }

    /// Notes a blob an ingest is about to create (call before the blob appears). Also
    /// renews the ingest's lease.
    pub fn note_new_blob(&self, seq: i64, sha256: &str) -> DbResult<()> {
        self.db.tx(|tx| {
            tx.execute(
                "INSERT INTO package_new_blobs (seq, sha256) VALUES (?1, ?2)",
                p![seq, sha256],
            )?;
            tx.execute(
                "UPDATE packages SET lease_until = ?2 WHERE seq = ?1",
                p![seq, lease()],
            )
        })?;
        Ok(())
    }

    fn take_new_blobs(&self, seq: i64) -> DbResult<Vec<String>> {
        self.db.tx(|tx| {
            let shas = tx
                .query(
                    "SELECT sha256 FROM package_new_blobs WHERE seq = ?1",
                    p![seq],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            tx.execute("DELETE FROM package_new_blobs WHERE seq = ?1", p![seq])?;
            Ok(shas)
        })
    }

    /// Makes an ingested package live, replacing the live package of the same name if any
    /// (which keeps its priority). Returns the sequence number of the replaced package.
    /// Blobs the ingest created but no key uses (a `.pdb` that was not a portable PDB) are
    /// deleted.
    ///
    /// `may_replace`: whether a live package of the same name may be replaced (an admin's
    /// request). Decided here, in the transaction that would replace it, so that a package
    /// added meanwhile by someone else is not replaced by a request that found none when it
    /// began: [`Activation::Refused`], and nothing changed.
    pub fn activate_package(
        &self,
        seq: i64,
        key_count: u64,
        blob_bytes: u64,
        may_replace: bool,
    ) -> DbResult<Activation> {
        // Two activations of one name on a shared database: the second one's check ran
        // before the first committed, and `packages_active_name` refuses it. Once more, it
        // sees the first and replaces it (or is refused), as it would have one moment later
        // (break-it pass: 500s for racing PUTs of one name).
        let mut attempt = 0;
        let replaced = loop {
            attempt += 1;
            match self.activate_once(seq, key_count, blob_bytes, may_replace) {
                Err(e) if e.is_unique_violation() && attempt < 3 => continue,
                r => break r?,
            }
        };
        let Some(replaced) = replaced else {
            return Ok(Activation::Refused);
        };
        self.changes.publish(&super::StoreChange::Any);
        for sha in self.take_new_blobs(seq)? {
            self.collect_blob(&sha);
        }
        Ok(match replaced {
            Some(old) => Activation::Replaced(old),
            None => Activation::Added,
        })
    }

    /// [`Self::activate_package`]'s transaction: `None` when refused, else the replaced
    /// package's `seq`, if any.
    fn activate_once(
        &self,
        seq: i64,
        key_count: u64,
        blob_bytes: u64,
        may_replace: bool,
    ) -> DbResult<Option<Option<i64>>> {
        self.db.tx(|tx| {
            let name = tx
                .query_opt("SELECT name FROM packages WHERE seq = ?1", p![seq])?
                .map(|r| r.text(0))
                .unwrap_or_default();
            let old = tx
                .query_opt(
                    "SELECT seq, priority FROM packages WHERE name = ?1 AND state = 'active'",
                    p![&name],
                )?
                .map(|r| (r.int(0), r.int(1)));
            if old.is_some() && !may_replace {
                return Ok(None);
            }
            if let Some((old_seq, _)) = old {
                tx.execute(
                    "UPDATE packages SET state = 'removing' WHERE seq = ?1",
                    p![old_seq],
                )?;
            }
            tx.execute(
                "UPDATE packages SET state = 'active', key_count = ?2, blob_bytes = ?3,
                 priority = COALESCE(?4, priority) WHERE seq = ?1",
                p![seq, key_count, blob_bytes, old.map(|(_, p)| p)],
            )?;
            // Its keys are served now: off the missing-symbols ledger (a bounded table,
            // each row one primary-key probe).
            tx.execute(
                "DELETE FROM missing_symbols WHERE EXISTS
                     (SELECT 1 FROM package_keys pk WHERE pk.key = missing_symbols.key
                      AND pk.seq = ?1)",
                p![seq],
            )?;
            bump(tx)?;
            Ok(Some(old.map(|(s, _)| s)))
        })
    }

    /// Takes a live package out of service at once; its rows go in [`Self::drop_package`].
    pub fn retire_package(&self, name: &str) -> DbResult<Option<i64>> {
        let retired = self.db.tx(|tx| {
            let seq = tx
                .query_opt(
                    "SELECT seq FROM packages WHERE name = ?1 AND state = 'active'",
                    p![name],
                )?
                .map(|r| r.int(0));
            if let Some(seq) = seq {
                tx.execute(
                    "UPDATE packages SET state = 'removing' WHERE seq = ?1",
                    p![seq],
                )?;
                bump(tx)?;
            }
            Ok(seq)
        })?;
        if retired.is_some() {
            self.changes.publish(&super::StoreChange::Any);
        }
        Ok(retired)
    }

    /// Deletes a package that is not live (retired, replaced, or a failed ingest), in
    /// batches, then the blobs nothing else uses.
    pub fn drop_package(&self, seq: i64) -> DbResult<()> {
        let blobs: Vec<String> = self
            .db
            .query(
                "SELECT DISTINCT sha256 FROM package_keys WHERE seq = ?1",
                p![seq],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
        // Batches keep each write transaction short, so a big package does not stall
        // uploads or lookups while it goes.
        loop {
            let n = self.db.execute(
                "DELETE FROM package_keys WHERE (key, seq) IN
                 (SELECT key, seq FROM package_keys WHERE seq = ?1 LIMIT ?2)",
                p![seq, BATCH as i64],
            )?;
            if n == 0 {
                break;
            }
        }
        self.db
            .execute("DELETE FROM packages WHERE seq = ?1", p![seq])?;
        for b in blobs.into_iter().chain(self.take_new_blobs(seq)?) {
            self.collect_blob(&b);
        }
        Ok(())
    }

    /// Packages left half-done by a crash: removals, and ingests whose lease ran out. On a
    /// local store at start-up every ingest is dead (this process was the only writer); on
    /// a shared one another instance may still be working on its own.
    pub fn unfinished_packages(&self) -> DbResult<Vec<i64>> {
        let cutoff = if self.is_shared() {
            unix_millis(SystemTime::now())
        } else {
            i64::MAX
        };
        Ok(self
            .db
            .query(
                "SELECT seq FROM packages WHERE state = 'removing'
                 OR (state = 'ingesting' AND lease_until < ?1)",
                p![cutoff],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect())
    }

    pub fn list_packages(&self) -> DbResult<Vec<PackageInfo>> {
        Ok(self
            .db
            .query(
                "SELECT name, size, key_count, blob_bytes, added_at FROM packages
                 WHERE state = 'active' ORDER BY priority",
                p![],
            )?
            .iter()
            .map(|r| info(r, 0))
            .collect())
    }

    pub fn package(&self, name: &str) -> DbResult<Option<(i64, PackageInfo)>> {
        Ok(self
            .db
            .query_opt(
                "SELECT seq, name, size, key_count, blob_bytes, added_at FROM packages
                 WHERE name = ?1 AND state = 'active'",
                p![name],
            )?
            .map(|r| (r.int(0), info(&r, 1))))
    }

    /// A page of a package's keys, in key order.
    pub fn package_keys(&self, seq: i64, after: &str, limit: usize) -> DbResult<Vec<PackageKey>> {
        Ok(self
            .db
            .query(
                "SELECT key, display, sha256, size, derived FROM package_keys
                 WHERE seq = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
                p![seq, after, limit as i64],
            )?
            .iter()
            .map(|r| PackageKey {
                key: r.text(0),
                display: r.text(1),
                sha256: r.text(2),
                size: r.int(3) as u64,
                derived: r.int(4) != 0,
            })
            .collect())
    }
}
