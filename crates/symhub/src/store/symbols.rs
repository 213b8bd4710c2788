//! The permanent symbol store: files a company uploads itself. Never evicted, looked up
//! before the proxy cache and the upstreams.
//!
//! Layout under `<data_dir>/store/`:
//! - `objects/<2 hex>/<sha256>` — content-addressed blobs: identical bytes under several keys
//!   (an ELF under its SymSrv and SSQP keys) are stored once.
//! - `tmp/` — uploads being received; emptied at start-up.
//! - `uploads/<upload key>` — bodies received by a v2 `PUT`, waiting for `:complete`.
//! - `store.sqlite3` — `symbols` (key → blob, with the module's identity for `checkStatus`
//!   and code-id lookups) and `uploads` (v2 sessions).
//!
//! A commit is: blob renamed into place (fsynced, hash checked while it was written) → one
//! SQL transaction that points every key at it → blobs no key points at any more are deleted.
//! Replacing a key's bytes is therefore atomic: a reader sees the old file or the new one.
//! Commits are serialized by a lock so that blob garbage collection never races an insert.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};
use symhub_core::SymbolKey;

use super::index::unix_millis;
use super::objects::ObjectDir;

/// A stored symbol, as the cache layer serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSymbol {
    pub key: String,
    pub display: String,
    pub sha256: String,
    pub size: u64,
    pub uploaded_at: SystemTime,
}

/// Who a module is, as recorded with its keys.
#[derive(Debug, Clone, Default)]
pub struct ModuleId {
    /// `BREAKPAD`, `ELF`, `PE`…
    pub kind: String,
    pub debug_file: String,
    pub debug_id: String,
    pub code_file: Option<String>,
    pub code_id: Option<String>,
}

/// A received body, checked and hashed, not yet visible. Its file is deleted if it is
/// dropped without being committed.
#[derive(Debug)]
pub struct Received {
    pub path: tempfile::TempPath,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// New or replaced bytes.
    Stored,
    /// The same bytes were already stored under every key.
    Duplicate,
}

/// An upload session of the v2 protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub upload_key: String,
    pub token_sha256: String,
    pub expires: SystemTime,
    /// `None` until the PUT has arrived.
    pub received: Option<(u64, String)>,
}

pub struct SymbolStore {
    root: PathBuf,
    pub objects: ObjectDir,
    conn: Mutex<Connection>,
    /// Blobs that an upload or an ingest is about to point keys at. Garbage collection
    /// leaves them alone, so a blob found "already there" cannot vanish before the rows
    /// that use it are written.
    claims: Mutex<std::collections::HashMap<String, usize>>,
}

/// Holds a blob back from garbage collection while it lives.
pub struct BlobClaim<'a> {
    store: &'a SymbolStore,
    sha256: String,
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
    }
}

pub(super) fn from_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl SymbolStore {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("store");
        let objects = ObjectDir::open(&root)?;
        std::fs::create_dir_all(root.join("uploads"))
            .with_context(|| format!("cannot create {}", root.join("uploads").display()))?;
        let db = root.join("store.sqlite3");
        let conn = super::open_db(
            &db,
            "store",
            "FULL",
            "CREATE TABLE IF NOT EXISTS symbols (
                 key TEXT PRIMARY KEY,          -- normalized (lowercase)
                 display TEXT NOT NULL,         -- as uploaded
                 sha256 TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 uploaded_at INTEGER NOT NULL,  -- unix ms
                 kind TEXT NOT NULL,
                 debug_file TEXT NOT NULL,      -- lowercase
                 debug_id TEXT NOT NULL,        -- lowercase, no dashes
                 code_file TEXT,                -- lowercase
                 code_id TEXT                   -- lowercase
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS symbols_module ON symbols(debug_file, debug_id);
             CREATE INDEX IF NOT EXISTS symbols_code ON symbols(code_id, code_file);
             CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(sha256);
             CREATE TABLE IF NOT EXISTS packages (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 name TEXT NOT NULL,
                 state TEXT NOT NULL,           -- ingesting | active | removing
                 priority INTEGER NOT NULL,     -- lower wins; kept across a replace
                 added_at INTEGER NOT NULL,     -- unix ms
                 size INTEGER NOT NULL,         -- bytes of the zip
                 key_count INTEGER NOT NULL,
                 blob_bytes INTEGER NOT NULL
             );
             CREATE UNIQUE INDEX IF NOT EXISTS packages_active_name ON packages(name) WHERE state = 'active';
             CREATE TABLE IF NOT EXISTS package_keys (
                 key TEXT NOT NULL,             -- normalized
                 seq INTEGER NOT NULL,
                 display TEXT NOT NULL,
                 sha256 TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 derived INTEGER NOT NULL,      -- 1: derived from a portable PDB, 0: symbol_index.json
                 PRIMARY KEY (key, seq)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS package_keys_seq ON package_keys(seq);
             -- Blobs an ingest created, noted before they appear, so a failed or crashed
             -- ingest can remove exactly those.
             CREATE TABLE IF NOT EXISTS package_new_blobs (seq INTEGER NOT NULL, sha256 TEXT NOT NULL);
             -- The same for uploads: a blob renamed into place whose rows were not written yet.
             CREATE TABLE IF NOT EXISTS upload_new_blobs (sha256 TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS package_keys_blob ON package_keys(sha256);
             CREATE TABLE IF NOT EXISTS uploads (
                 upload_key TEXT PRIMARY KEY,
                 token_sha256 TEXT NOT NULL,
                 expires INTEGER NOT NULL,      -- unix ms
                 size INTEGER,
                 sha256 TEXT
             ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            root,
            objects,
            conn: Mutex::new(conn),
            claims: Mutex::default(),
        })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.objects.path(sha256)
    }

    /// The stored file for a key: an upload, else the winning package (explicit mappings
    /// before derived ones, then the package added first). Indexed lookups only.
    pub fn get(&self, key: &str) -> rusqlite::Result<Option<StoredSymbol>> {
        let conn = self.conn();
        let row = |r: &rusqlite::Row<'_>| {
            Ok(StoredSymbol {
                key: key.to_owned(),
                display: r.get(0)?,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                uploaded_at: from_millis(r.get(3)?),
            })
        };
        let uploaded = conn
            .prepare_cached(
                "SELECT display, sha256, size, uploaded_at FROM symbols WHERE key = ?1",
            )?
            .query_row([key], row)
            .optional()?;
        if uploaded.is_some() {
            return Ok(uploaded);
        }
        let packaged = conn
            .prepare_cached(
                "SELECT pk.display, pk.sha256, pk.size, p.added_at
                 FROM package_keys pk JOIN packages p ON p.seq = pk.seq
                 WHERE pk.key = ?1 AND p.state = 'active'
                 ORDER BY pk.derived, p.priority LIMIT 1",
            )?
            .query_row([key], row)
            .optional();
        packaged
    }

    /// Whether a module with this identity was uploaded (sym-upload-v2 `checkStatus`).
    pub fn has_module(&self, debug_file: &str, debug_id: &str) -> rusqlite::Result<bool> {
        self.conn()
            .prepare_cached(
                "SELECT 1 FROM symbols WHERE debug_file = ?1 AND debug_id = ?2 LIMIT 1",
            )?
            .query_row(
                params![
                    debug_file.to_lowercase(),
                    debug_id.replace('-', "").to_lowercase()
                ],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
    }

    /// The Breakpad key of a module uploaded with this code file and code id (Tecken's
    /// code-id lookup).
    pub fn by_code_id(&self, code_file: &str, code_id: &str) -> rusqlite::Result<Option<String>> {
        self.conn()
            .prepare_cached(
                "SELECT display FROM symbols
                 WHERE code_id = ?1 AND code_file = ?2 AND kind = 'BREAKPAD' LIMIT 1",
            )?
            .query_row(
                params![code_id.to_lowercase(), code_file.to_lowercase()],
                |r| r.get(0),
            )
            .optional()
    }

    /// Stored symbols whose key starts with `prefix` (case-insensitive), in key order.
    pub fn list(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<StoredSymbol>> {
        let prefix = prefix.to_lowercase();
        // `prefix || char(0x10FFFF)` bounds the range, so the primary key index serves it.
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, display, sha256, size, uploaded_at FROM symbols
             WHERE key >= ?1 AND key < ?1 || char(1114111) AND key > ?2
             ORDER BY key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![prefix, after.to_lowercase(), limit as i64], |r| {
            Ok(StoredSymbol {
                key: r.get(0)?,
                display: r.get(1)?,
                sha256: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                uploaded_at: from_millis(r.get(4)?),
            })
        })?;
        rows.collect()
    }

    /// Makes a received file visible under `keys`. Blocking.
    pub fn commit(
        &self,
        received: Received,
        keys: &[SymbolKey],
        module: &ModuleId,
    ) -> anyhow::Result<Committed> {
        let _claim = self.claim(&received.sha256);
        let duplicate = keys.iter().all(
            |k| matches!(self.get(k.normalized()), Ok(Some(s)) if s.sha256 == received.sha256),
        );
        if duplicate {
            let _ = std::fs::remove_file(&received.path);
            return Ok(Committed::Duplicate);
        }
        let dest = self.blob_path(&received.sha256);
        let created = !dest.exists();
        if created {
            // Noted first: a crash before the rows below leaves a note that start-up uses
            // to remove the blob, instead of an unreferenced file forever.
            self.conn().execute(
                "INSERT INTO upload_new_blobs (sha256) VALUES (?1)",
                [&received.sha256],
            )?;
            let file = std::fs::File::open(&received.path)?;
            file.sync_all()?;
            let parent = dest.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(parent)?;
            std::fs::rename(&received.path, &dest)?;
            std::fs::File::open(parent)?.sync_all()?;
        } else {
            let _ = std::fs::remove_file(&received.path);
        }
        let now = unix_millis(SystemTime::now());
        let mut replaced = Vec::new();
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for key in keys {
                let old: Option<String> = tx
                    .query_row(
                        "SELECT sha256 FROM symbols WHERE key = ?1",
                        [key.normalized()],
                        |r| r.get(0),
                    )
                    .optional()?;
                replaced.extend(old.filter(|o| *o != received.sha256));
                tx.execute(
                    "INSERT OR REPLACE INTO symbols
                     (key, display, sha256, size, uploaded_at, kind, debug_file, debug_id, code_file, code_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        key.normalized(),
                        key.to_string(),
                        received.sha256,
                        received.size as i64,
                        now,
                        module.kind,
                        module.debug_file.to_lowercase(),
                        module.debug_id.replace('-', "").to_lowercase(),
                        module.code_file.as_deref().map(str::to_lowercase),
                        module.code_id.as_deref().map(str::to_lowercase),
                    ],
                )?;
            }
            if created {
                tx.execute(
                    "DELETE FROM upload_new_blobs WHERE sha256 = ?1",
                    [&received.sha256],
                )?;
            }
            tx.commit()?;
        }
        for old in replaced {
            self.collect_blob(&old);
        }
        Ok(Committed::Stored)
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `sha256` from being garbage-collected until the claim is dropped.
    pub fn claim(&self, sha256: &str) -> BlobClaim<'_> {
        *self.claims().entry(sha256.to_owned()).or_default() += 1;
        BlobClaim {
            store: self,
            sha256: sha256.to_owned(),
        }
    }

    /// Deletes a blob no key points at (neither an upload's nor a package's) and nobody has
    /// claimed. The claims lock is held from the check to the deletion.
    pub fn collect_blob(&self, sha256: &str) {
        let claims = self.claims();
        if claims.contains_key(sha256) {
            return;
        }
        let used: rusqlite::Result<Option<i64>> = self
            .conn()
            .query_row(
                "SELECT 1 FROM symbols WHERE sha256 = ?1
                 UNION ALL SELECT 1 FROM package_keys WHERE sha256 = ?1 LIMIT 1",
                [sha256],
                |r| r.get(0),
            )
            .optional();
        if let Ok(None) = used {
            if let Err(e) = self.objects.remove(sha256) {
                tracing::warn!(blob = sha256, "cannot remove a replaced blob: {e}");
            }
        }
        drop(claims);
    }

    /// Removes blobs that uploads cut short by a crash had put in place. Blocking; start-up.
    pub fn recover_uploads(&self) -> rusqlite::Result<usize> {
        let shas: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT DISTINCT sha256 FROM upload_new_blobs")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for sha in &shas {
            self.collect_blob(sha);
        }
        self.conn().execute("DELETE FROM upload_new_blobs", [])?;
        Ok(shas.len())
    }

    // ---- upload sessions -------------------------------------------------------------

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn count_sessions(&self) -> rusqlite::Result<u64> {
        let now = unix_millis(SystemTime::now());
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM uploads WHERE expires > ?1",
                [now],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
    }

    pub fn create_session(&self, s: &Session) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO uploads (upload_key, token_sha256, expires) VALUES (?1, ?2, ?3)",
            params![s.upload_key, s.token_sha256, unix_millis(s.expires)],
        )?;
        Ok(())
    }

    /// A live (unexpired) session.
    pub fn session(&self, upload_key: &str) -> rusqlite::Result<Option<Session>> {
        let now = unix_millis(SystemTime::now());
        self.conn()
            .prepare_cached(
                "SELECT token_sha256, expires, size, sha256 FROM uploads
                 WHERE upload_key = ?1 AND expires > ?2",
            )?
            .query_row(params![upload_key, now], |r| {
                let size: Option<i64> = r.get(2)?;
                let sha: Option<String> = r.get(3)?;
                Ok(Session {
                    upload_key: upload_key.to_owned(),
                    token_sha256: r.get(0)?,
                    expires: from_millis(r.get(1)?),
                    received: size.zip(sha).map(|(n, h)| (n as u64, h)),
                })
            })
            .optional()
    }

    /// Records the PUT body of a session; false if the session already had one (tokens
    /// are single-use).
    pub fn mark_received(
        &self,
        upload_key: &str,
        size: u64,
        sha256: &str,
    ) -> rusqlite::Result<bool> {
        Ok(self.conn().execute(
            "UPDATE uploads SET size = ?2, sha256 = ?3 WHERE upload_key = ?1 AND size IS NULL",
            params![upload_key, size as i64, sha256],
        )? == 1)
    }

    pub fn received_path(&self, upload_key: &str) -> PathBuf {
        self.uploads_dir().join(upload_key)
    }

    pub fn end_session(&self, upload_key: &str) -> rusqlite::Result<()> {
        self.conn()
            .execute("DELETE FROM uploads WHERE upload_key = ?1", [upload_key])?;
        let _ = std::fs::remove_file(self.received_path(upload_key));
        Ok(())
    }

    /// Deletes expired sessions and their files, and files no session owns. Blocking.
    pub fn expire_sessions(&self) -> rusqlite::Result<usize> {
        let now = unix_millis(SystemTime::now());
        let expired: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT upload_key FROM uploads WHERE expires <= ?1")?;
            let rows = stmt.query_map([now], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for key in &expired {
            self.end_session(key)?;
        }
        if let Ok(dir) = std::fs::read_dir(self.uploads_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if self.session(&name)?.is_none() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(expired.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(store: &SymbolStore, bytes: &[u8]) -> Received {
        use sha2::Digest;
        let path = store.objects.tmp_dir().join(format!("r{}", bytes.len()));
        std::fs::write(&path, bytes).unwrap();
        Received {
            path: tempfile::TempPath::try_from_path(path).unwrap(),
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    #[test]
    fn commit_dedupes_replaces_and_collects_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SymbolStore::open(dir.path()).unwrap();
        let k = |s: &str| SymbolKey::parse_path(s).unwrap();
        let module = ModuleId {
            kind: "ELF".into(),
            debug_file: "a".into(),
            debug_id: "1".into(),
            ..ModuleId::default()
        };
        let keys = [k("a/1/a"), k("_.debug/elf-buildid-sym-1/_.debug")];
        let first = received(&store, b"one");
        let sha1 = first.sha256.clone();
        assert_eq!(
            store.commit(first, &keys, &module).unwrap(),
            Committed::Stored
        );
        assert!(store.blob_path(&sha1).exists());
        assert_eq!(store.get("a/1/a").unwrap().unwrap().sha256, sha1);
        assert_eq!(
            store
                .commit(received(&store, b"one"), &keys, &module)
                .unwrap(),
            Committed::Duplicate
        );
        assert!(store.has_module("A", "1").unwrap());
        let second = received(&store, b"two!");
        let sha2 = second.sha256.clone();
        assert_eq!(
            store.commit(second, &keys, &module).unwrap(),
            Committed::Stored
        );
        assert_eq!(
            store
                .get("_.debug/elf-buildid-sym-1/_.debug")
                .unwrap()
                .unwrap()
                .sha256,
            sha2
        );
        assert!(
            !store.blob_path(&sha1).exists(),
            "the replaced blob is collected"
        );
        let listed = store.list("A/", "", 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].display, "a/1/a");
    }

    #[test]
    fn an_upload_cut_between_rename_and_rows_leaves_nothing_after_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = SymbolStore::open(dir.path()).unwrap();
        let sha = "cd".repeat(32);
        store
            .conn()
            .execute("INSERT INTO upload_new_blobs (sha256) VALUES (?1)", [&sha])
            .unwrap();
        let blob = store.blob_path(&sha);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"renamed, never referenced").unwrap();
        assert_eq!(store.recover_uploads().unwrap(), 1);
        assert!(!blob.exists());
    }

    #[test]
    fn claimed_blobs_are_not_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = SymbolStore::open(dir.path()).unwrap();
        let sha = "ef".repeat(32);
        let blob = store.blob_path(&sha);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"about to be used").unwrap();
        let claim = store.claim(&sha);
        store.collect_blob(&sha);
        assert!(blob.exists(), "a claimed blob survives collection");
        drop(claim);
        store.collect_blob(&sha);
        assert!(!blob.exists());
    }
}
