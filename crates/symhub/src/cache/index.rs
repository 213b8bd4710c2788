//! The metadata index: one SQLite database (`index.sqlite3` in the data directory) that maps
//! normalized keys to cached objects and remembers negative answers.
//!
//! It is what lets the cache survive restarts without scanning files: start-up reads one
//! aggregate (total size), and the LRU order is an index on `last_access`, so eviction picks
//! victims with one indexed query instead of walking the tree.
//!
//! Invariant: a row exists only for an object that was committed before the row was written.
//! A crash between the two leaves an unreferenced object (wasted space, never served), never
//! a row without bytes. Calls block: async callers go through `spawn_blocking`, but for the
//! point lookups of [`Index::get`] and [`Index::get_negative`], which run on readers that never
//! wait for the writer (`store::readers`) and may be called from a connection's worker.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::readers::Readers;
use crate::store::{unix_millis, unix_secs};

/// What the index knows of one cached file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEntry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub last_modified: SystemTime,
    pub upstream: String,
}

pub struct Index {
    conn: Mutex<Connection>,
    readers: Readers,
}

fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

impl Index {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = crate::store::open_db(
            path,
            "index",
            "NORMAL",
            "CREATE TABLE IF NOT EXISTS cache_entries (
                 key TEXT PRIMARY KEY,
                 size INTEGER NOT NULL,
                 sha256 TEXT NOT NULL,
                 last_modified INTEGER NOT NULL,
                 upstream TEXT NOT NULL,
                 created INTEGER NOT NULL,      -- unix ms
                 last_access INTEGER NOT NULL   -- unix ms
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS cache_lru ON cache_entries(last_access);
             CREATE TABLE IF NOT EXISTS negatives (
                 key TEXT PRIMARY KEY,
                 expires INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Readers::open(path, "index")?,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (it has its own
        // transactions), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> rusqlite::Result<Option<CachedEntry>> {
        self.readers
            .get()
            .prepare_cached(
                "SELECT size, sha256, last_modified, upstream FROM cache_entries WHERE key = ?1",
            )?
            .query_row([key], |r| {
                Ok(CachedEntry {
                    key: key.to_owned(),
                    size: r.get::<_, i64>(0)? as u64,
                    sha256: r.get(1)?,
                    last_modified: from_unix(r.get(2)?),
                    upstream: r.get(3)?,
                })
            })
            .optional()
    }

    /// Records a committed object and clears any negative entry for its key.
    pub fn insert(&self, e: &CachedEntry) -> rusqlite::Result<()> {
        let now = unix_millis(SystemTime::now());
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO cache_entries
             (key, size, sha256, last_modified, upstream, created, last_access)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                e.key,
                e.size as i64,
                e.sha256,
                unix_secs(e.last_modified),
                e.upstream,
                now
            ],
        )?;
        tx.execute("DELETE FROM negatives WHERE key = ?1", [&e.key])?;
        tx.commit()
    }

    pub fn total_size(&self) -> rusqlite::Result<u64> {
        self.conn()
            .query_row(
                "SELECT COALESCE(SUM(size), 0) FROM cache_entries",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|s| s as u64)
    }

    pub fn count(&self) -> rusqlite::Result<u64> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM cache_entries", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|s| s as u64)
    }

    /// Writes batched access times (unix milliseconds) in one transaction.
    pub fn touch_many(&self, touches: &[(String, i64)]) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE cache_entries SET last_access = MAX(last_access, ?2) WHERE key = ?1",
            )?;
            for (key, at) in touches {
                stmt.execute(params![key, at])?;
            }
        }
        tx.commit()
    }

    /// The least recently used entries, oldest first.
    pub fn oldest(&self, limit: usize) -> rusqlite::Result<Vec<(String, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, size FROM cache_entries ORDER BY last_access ASC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    }

    /// Entries bigger than `size` bytes (at most `limit`), biggest first.
    pub fn larger_than(&self, size: u64, limit: usize) -> rusqlite::Result<Vec<(String, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, size FROM cache_entries WHERE size > ?1 ORDER BY size DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map([size as i64, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    }

    /// Removes an entry's row; returns whether it existed.
    pub fn remove(&self, key: &str) -> rusqlite::Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM cache_entries WHERE key = ?1", [key])?
            > 0)
    }

    pub fn put_negative(&self, key: &str, expires: SystemTime) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO negatives (key, expires) VALUES (?1, ?2)",
            params![key, unix_secs(expires)],
        )?;
        Ok(())
    }

    /// The expiry of a live negative entry, if any.
    pub fn get_negative(&self, key: &str) -> rusqlite::Result<Option<SystemTime>> {
        let now = unix_secs(SystemTime::now());
        self.readers
            .get()
            .prepare_cached("SELECT expires FROM negatives WHERE key = ?1 AND expires > ?2")?
            .query_row(params![key, now], |r| r.get::<_, i64>(0))
            .optional()
            .map(|o| o.map(from_unix))
    }

    /// Removes the negative entries whose key starts with `prefix`.
    pub fn remove_negatives(&self, prefix: &str) -> rusqlite::Result<usize> {
        self.conn().execute(
            "DELETE FROM negatives WHERE substr(key, 1, length(?1)) = ?1",
            [prefix],
        )
    }

    pub fn purge_expired_negatives(&self) -> rusqlite::Result<usize> {
        let now = unix_secs(SystemTime::now());
        self.conn()
            .execute("DELETE FROM negatives WHERE expires <= ?1", [now])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: u64) -> CachedEntry {
        CachedEntry {
            key: key.into(),
            size,
            sha256: "00".repeat(32),
            last_modified: from_unix(1_700_000_000),
            upstream: "u".into(),
        }
    }

    #[test]
    fn entries_round_trip_and_order_by_access() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.db")).unwrap();
        idx.insert(&entry("a/1/a", 10)).unwrap();
        idx.insert(&entry("b/1/b", 20)).unwrap();
        assert_eq!(idx.get("a/1/a").unwrap(), Some(entry("a/1/a", 10)));
        assert_eq!(idx.total_size().unwrap(), 30);
        idx.touch_many(&[("a/1/a".into(), i64::MAX / 2)]).unwrap();
        let oldest = idx.oldest(1).unwrap();
        assert_eq!(oldest, vec![("b/1/b".to_string(), 20)]);
        assert!(idx.remove("b/1/b").unwrap());
        assert_eq!(idx.total_size().unwrap(), 10);
    }

    #[test]
    fn a_commit_clears_the_negative_entry() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.db")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        idx.put_negative("a/1/a", later).unwrap();
        assert!(idx.get_negative("a/1/a").unwrap().is_some());
        idx.insert(&entry("a/1/a", 1)).unwrap();
        assert!(idx.get_negative("a/1/a").unwrap().is_none());
        idx.put_negative("b/1/b", SystemTime::now() - Duration::from_secs(1))
            .unwrap();
        assert!(idx.get_negative("b/1/b").unwrap().is_none());
        assert_eq!(idx.purge_expired_negatives().unwrap(), 1);
    }
}
