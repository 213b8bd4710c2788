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

use std::time::SystemTime;

use rusqlite::{params, OptionalExtension};

use super::index::unix_millis;
use super::symbols::{from_millis, SymbolStore};

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
    #[serde(serialize_with = "rfc3339")]
    pub added_at: SystemTime,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
}

const BATCH: usize = 10_000;

impl SymbolStore {
    /// Registers a package being ingested; returns its sequence number.
    pub fn begin_package(&self, name: &str, size: u64) -> rusqlite::Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO packages (name, state, priority, added_at, size, key_count, blob_bytes)
             VALUES (?1, 'ingesting', 0, ?2, ?3, 0, 0)",
            params![name, unix_millis(SystemTime::now()), size as i64],
        )?;
        let seq = conn.last_insert_rowid();
        conn.execute("UPDATE packages SET priority = ?1 WHERE seq = ?1", [seq])?;
        Ok(seq)
    }

    /// Adds mappings of an ingesting package. Returns the keys it already had (duplicates).
    pub fn add_package_keys(&self, seq: i64, keys: &[PackageKey]) -> rusqlite::Result<Vec<String>> {
        let mut duplicates = Vec::new();
        let mut conn = self.conn();
        for batch in keys.chunks(BATCH) {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO package_keys (key, seq, display, sha256, size, derived)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for k in batch {
                    let n = stmt.execute(params![
                        k.key,
                        seq,
                        k.display,
                        k.sha256,
                        k.size as i64,
                        k.derived as i64
                    ])?;
                    if n == 0 {
                        duplicates.push(k.display.clone());
                    }
                }
            }
            tx.commit()?;
        }
        Ok(duplicates)
    }

    /// Notes a blob an ingest is about to create (call before the blob appears).
    pub fn note_new_blob(&self, seq: i64, sha256: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO package_new_blobs (seq, sha256) VALUES (?1, ?2)",
            params![seq, sha256],
        )?;
        Ok(())
    }

    fn take_new_blobs(&self, seq: i64) -> rusqlite::Result<Vec<String>> {
        let conn = self.conn();
        let shas = {
            let mut stmt = conn.prepare("SELECT sha256 FROM package_new_blobs WHERE seq = ?1")?;
            let rows = stmt.query_map([seq], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        conn.execute("DELETE FROM package_new_blobs WHERE seq = ?1", [seq])?;
        Ok(shas)
    }

    /// Makes an ingested package live, replacing the live package of the same name if any
    /// (which keeps its priority). Returns the sequence number of the replaced package.
    /// Blobs the ingest created but no key uses (a `.pdb` that was not a portable PDB) are
    /// deleted.
    pub fn activate_package(
        &self,
        seq: i64,
        key_count: u64,
        blob_bytes: u64,
    ) -> rusqlite::Result<Option<i64>> {
        let replaced = self.activate(seq, key_count, blob_bytes)?;
        for sha in self.take_new_blobs(seq)? {
            self.collect_blob(&sha);
        }
        Ok(replaced)
    }

    fn activate(&self, seq: i64, key_count: u64, blob_bytes: u64) -> rusqlite::Result<Option<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let name: String =
            tx.query_row("SELECT name FROM packages WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })?;
        let old: Option<(i64, i64)> = tx
            .query_row(
                "SELECT seq, priority FROM packages WHERE name = ?1 AND state = 'active'",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((old_seq, _)) = old {
            tx.execute(
                "UPDATE packages SET state = 'removing' WHERE seq = ?1",
                [old_seq],
            )?;
        }
        tx.execute(
            "UPDATE packages SET state = 'active', key_count = ?2, blob_bytes = ?3,
             priority = COALESCE(?4, priority) WHERE seq = ?1",
            params![
                seq,
                key_count as i64,
                blob_bytes as i64,
                old.map(|(_, p)| p)
            ],
        )?;
        tx.commit()?;
        Ok(old.map(|(s, _)| s))
    }

    /// Takes a live package out of service at once; its rows go in [`Self::drop_package`].
    pub fn retire_package(&self, name: &str) -> rusqlite::Result<Option<i64>> {
        let conn = self.conn();
        let seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM packages WHERE name = ?1 AND state = 'active'",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(seq) = seq {
            conn.execute(
                "UPDATE packages SET state = 'removing' WHERE seq = ?1",
                [seq],
            )?;
        }
        Ok(seq)
    }

    /// Deletes a package that is not live (retired, replaced, or a failed ingest), in
    /// batches, then the blobs nothing else uses.
    pub fn drop_package(&self, seq: i64) -> rusqlite::Result<()> {
        let blobs: Vec<String> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare("SELECT DISTINCT sha256 FROM package_keys WHERE seq = ?1")?;
            let rows = stmt.query_map([seq], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // Batches keep each write transaction short, so a big package does not stall
        // uploads or lookups while it goes.
        loop {
            let n = self.conn().execute(
                "DELETE FROM package_keys WHERE (key, seq) IN
                 (SELECT key, seq FROM package_keys WHERE seq = ?1 LIMIT ?2)",
                params![seq, BATCH as i64],
            )?;
            if n == 0 {
                break;
            }
        }
        self.conn()
            .execute("DELETE FROM packages WHERE seq = ?1", [seq])?;
        for b in blobs.into_iter().chain(self.take_new_blobs(seq)?) {
            self.collect_blob(&b);
        }
        Ok(())
    }

    /// Packages left half-done by a crash (ingesting, or removing); dropped at start-up.
    pub fn unfinished_packages(&self) -> rusqlite::Result<Vec<i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq FROM packages WHERE state != 'active'")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    pub fn list_packages(&self) -> rusqlite::Result<Vec<PackageInfo>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, size, key_count, blob_bytes, added_at FROM packages
             WHERE state = 'active' ORDER BY priority",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PackageInfo {
                name: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                key_count: r.get::<_, i64>(2)? as u64,
                blob_bytes: r.get::<_, i64>(3)? as u64,
                added_at: from_millis(r.get(4)?),
            })
        })?;
        rows.collect()
    }

    pub fn package(&self, name: &str) -> rusqlite::Result<Option<(i64, PackageInfo)>> {
        self.conn()
            .query_row(
                "SELECT seq, name, size, key_count, blob_bytes, added_at FROM packages
                 WHERE name = ?1 AND state = 'active'",
                [name],
                |r| {
                    Ok((
                        r.get(0)?,
                        PackageInfo {
                            name: r.get(1)?,
                            size: r.get::<_, i64>(2)? as u64,
                            key_count: r.get::<_, i64>(3)? as u64,
                            blob_bytes: r.get::<_, i64>(4)? as u64,
                            added_at: from_millis(r.get(5)?),
                        },
                    ))
                },
            )
            .optional()
    }

    /// A page of a package's keys, in key order.
    pub fn package_keys(
        &self,
        seq: i64,
        after: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<PackageKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, display, sha256, size, derived FROM package_keys
             WHERE seq = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![seq, after, limit as i64], |r| {
            Ok(PackageKey {
                key: r.get(0)?,
                display: r.get(1)?,
                sha256: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                derived: r.get::<_, i64>(4)? != 0,
            })
        })?;
        rows.collect()
    }

    /// SQLite's count of commits by *other* connections (another process on this data dir,
    /// such as `symhub package add --data-dir`). A change means memory may be stale.
    pub fn data_version(&self) -> rusqlite::Result<i64> {
        self.conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))
    }
}
