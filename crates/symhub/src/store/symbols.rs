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
//! With `storage.store = "s3://…"` the blobs and upload bodies live in a bucket instead
//! ([`super::blobs`]) and the tables in a shared PostgreSQL ([`super::db`]); the logic
//! below is the same for both.
//!
//! A commit is: blob put in place (fsynced and renamed, or uploaded whole; hash checked while
//! it was received) → one SQL transaction that points every key at it → blobs no key points
//! at any more are deleted. Replacing a key's bytes is therefore atomic: a reader sees the
//! old file or the new one. Blob claims keep garbage collection from racing a writer that
//! reuses a blob.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use symhub_core::SymbolKey;

use super::blobs::Blobs;
use super::db::{p, Db, DbError, DbResult, DbTarget, Row};
use super::unix_millis;
use crate::config::StorageConfig;

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

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS symbols (
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
         blob_bytes INTEGER NOT NULL,
         lease_until INTEGER NOT NULL DEFAULT 0 -- unix ms; an ingest past it was abandoned
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
     -- The same for uploads: a blob put in place whose rows were not written yet.
     CREATE TABLE IF NOT EXISTS upload_new_blobs (sha256 TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS package_keys_blob ON package_keys(sha256);
     CREATE TABLE IF NOT EXISTS uploads (
         upload_key TEXT PRIMARY KEY,
         token_sha256 TEXT NOT NULL,
         expires INTEGER NOT NULL,      -- unix ms
         size INTEGER,
         sha256 TEXT
     ) WITHOUT ROWID;
     -- Blobs a writer is about to point keys at (shared databases only: one process
     -- keeps its claims in memory).
     CREATE TABLE IF NOT EXISTS blob_claims (sha256 TEXT NOT NULL, id TEXT NOT NULL, until INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
     INSERT INTO changes (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING;";

/// The same tables for PostgreSQL: `COLLATE "C"` keeps key order bytewise, as in SQLite, so
/// listings page identically.
const PG_SCHEMA: &str = r#"CREATE TABLE IF NOT EXISTS symbols (
         key TEXT COLLATE "C" PRIMARY KEY,
         display TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         size BIGINT NOT NULL,
         uploaded_at BIGINT NOT NULL,
         kind TEXT NOT NULL,
         debug_file TEXT NOT NULL,
         debug_id TEXT NOT NULL,
         code_file TEXT,
         code_id TEXT
     );
     CREATE INDEX IF NOT EXISTS symbols_module ON symbols(debug_file, debug_id);
     CREATE INDEX IF NOT EXISTS symbols_code ON symbols(code_id, code_file);
     CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(sha256);
     CREATE TABLE IF NOT EXISTS packages (
         seq BIGSERIAL PRIMARY KEY,
         name TEXT NOT NULL,
         state TEXT NOT NULL,
         priority BIGINT NOT NULL,
         added_at BIGINT NOT NULL,
         size BIGINT NOT NULL,
         key_count BIGINT NOT NULL,
         blob_bytes BIGINT NOT NULL,
         lease_until BIGINT NOT NULL DEFAULT 0
     );
     CREATE UNIQUE INDEX IF NOT EXISTS packages_active_name ON packages(name) WHERE state = 'active';
     CREATE TABLE IF NOT EXISTS package_keys (
         key TEXT COLLATE "C" NOT NULL,
         seq BIGINT NOT NULL,
         display TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         size BIGINT NOT NULL,
         derived BIGINT NOT NULL,
         PRIMARY KEY (key, seq)
     );
     CREATE INDEX IF NOT EXISTS package_keys_seq ON package_keys(seq);
     CREATE TABLE IF NOT EXISTS package_new_blobs (seq BIGINT NOT NULL, sha256 TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS upload_new_blobs (sha256 TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS package_keys_blob ON package_keys(sha256);
     CREATE TABLE IF NOT EXISTS uploads (
         upload_key TEXT PRIMARY KEY,
         token_sha256 TEXT NOT NULL,
         expires BIGINT NOT NULL,
         size BIGINT,
         sha256 TEXT
     );
     CREATE TABLE IF NOT EXISTS blob_claims (sha256 TEXT NOT NULL, id TEXT NOT NULL, until BIGINT NOT NULL);
     CREATE INDEX IF NOT EXISTS blob_claims_sha ON blob_claims(sha256);
     CREATE TABLE IF NOT EXISTS changes (id INT PRIMARY KEY, n BIGINT NOT NULL);
     INSERT INTO changes (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING"#;

/// How long a shared blob claim protects a blob if its writer dies without releasing it.
const CLAIM_LEASE: Duration = Duration::from_secs(3600);

pub struct SymbolStore {
    root: PathBuf,
    pub blobs: Blobs,
    pub(super) db: Db,
    /// Blobs that an upload or an ingest is about to point keys at. Garbage collection
    /// leaves them alone, so a blob found "already there" cannot vanish before the rows
    /// that use it are written. A shared database also records them in `blob_claims`, for
    /// the other instances.
    claims: Mutex<std::collections::HashMap<String, usize>>,
    /// Told of every change this process makes (see [`super::changes`]).
    pub changes: super::changes::ChangeFeed,
}

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

pub(super) fn from_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn stored(key: String, r: &Row, at: usize) -> StoredSymbol {
    StoredSymbol {
        key,
        display: r.text(at),
        sha256: r.text(at + 1),
        size: r.int(at + 2) as u64,
        uploaded_at: from_millis(r.int(at + 3)),
    }
}

impl SymbolStore {
    /// The embedded default: blobs and SQLite under `data_dir/store`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let storage = StorageConfig {
            data_dir: data_dir.to_path_buf(),
            ..StorageConfig::default()
        };
        Self::open_with(&storage)
    }

    /// The store `storage` describes: local, or a bucket with a shared database. Opening a
    /// bucket store needs a Tokio runtime (its requests run on it).
    pub fn open_with(storage: &StorageConfig) -> anyhow::Result<Self> {
        let root = storage.data_dir.join("store");
        let blobs = Blobs::open(&root, storage)?;
        std::fs::create_dir_all(root.join("uploads"))
            .with_context(|| format!("cannot create {}", root.join("uploads").display()))?;
        let target = if storage.database.is_empty() {
            let db = root.join("store.sqlite3");
            migrate_sqlite(&db)?;
            DbTarget::Sqlite(db)
        } else {
            DbTarget::Postgres {
                url: storage.database.clone(),
                ca_file: storage.database_ca_file.clone(),
            }
        };
        let db = Db::open(&target, SQLITE_SCHEMA, PG_SCHEMA)?;
        Ok(Self {
            root,
            blobs,
            db,
            claims: Mutex::default(),
            changes: Default::default(),
        })
    }

    /// Whether the store is shared with other instances (a bucket and a shared database).
    pub fn is_shared(&self) -> bool {
        self.blobs.bucket().is_some()
    }

    /// For `/healthz` of a shared store: whether the bucket and the database answer. A bucket
    /// known to be down is probed, so health recovers without traffic.
    pub fn shared_health(&self) -> Option<(bool, bool)> {
        let bucket = self.blobs.bucket()?;
        let bucket_ok = !bucket.is_down() || bucket.probe();
        let db_ok = self.db.query_opt("SELECT 1", p![]).is_ok();
        Some((bucket_ok, db_ok))
    }

    /// Where the blob's bytes are, or would be, on local disk: the store's objects, or this
    /// instance's copies of bucket blobs. Nothing is fetched: a cold bucket blob streams
    /// through a fill (`cache::fill`).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs.dir().path(sha256)
    }

    /// The stored file for a key: an upload, else the winning package (explicit mappings
    /// before derived ones, then the package added first). Indexed lookups only.
    pub fn get(&self, key: &str) -> DbResult<Option<StoredSymbol>> {
        let mut conn = self.db.conn();
        let uploaded = conn.query_opt(
            "SELECT display, sha256, size, uploaded_at FROM symbols WHERE key = ?1",
            p![key],
        )?;
        if let Some(r) = uploaded {
            return Ok(Some(stored(key.to_owned(), &r, 0)));
        }
        let packaged = conn.query_opt(
            "SELECT pk.display, pk.sha256, pk.size, p.added_at
             FROM package_keys pk JOIN packages p ON p.seq = pk.seq
             WHERE pk.key = ?1 AND p.state = 'active'
             ORDER BY pk.derived, p.priority LIMIT 1",
            p![key],
        )?;
        Ok(packaged.map(|r| stored(key.to_owned(), &r, 0)))
    }

    /// Whether a module with this identity was uploaded (sym-upload-v2 `checkStatus`).
    pub fn has_module(&self, debug_file: &str, debug_id: &str) -> DbResult<bool> {
        Ok(self
            .db
            .query_opt(
                "SELECT 1 FROM symbols WHERE debug_file = ?1 AND debug_id = ?2 LIMIT 1",
                p![
                    &debug_file.to_lowercase(),
                    &debug_id.replace('-', "").to_lowercase()
                ],
            )?
            .is_some())
    }

    /// The Breakpad key of a module uploaded with this code file and code id (Tecken's
    /// code-id lookup).
    pub fn by_code_id(&self, code_file: &str, code_id: &str) -> DbResult<Option<String>> {
        Ok(self
            .db
            .query_opt(
                "SELECT display FROM symbols
                 WHERE code_id = ?1 AND code_file = ?2 AND kind = 'BREAKPAD' LIMIT 1",
                p![&code_id.to_lowercase(), &code_file.to_lowercase()],
            )?
            .map(|r| r.text(0)))
    }

    /// Stored symbols whose key starts with `prefix` (case-insensitive), in key order.
    pub fn list(&self, prefix: &str, after: &str, limit: usize) -> DbResult<Vec<StoredSymbol>> {
        let prefix = prefix.to_lowercase();
        // The largest code point bounds the range, so the primary key index serves it.
        let end = format!("{prefix}\u{10FFFF}");
        let rows = self.db.query(
            "SELECT key, display, sha256, size, uploaded_at FROM symbols
             WHERE key >= ?1 AND key < ?2 AND key > ?3
             ORDER BY key LIMIT ?4",
            p![&prefix, &end, &after.to_lowercase(), limit as i64],
        )?;
        Ok(rows.iter().map(|r| stored(r.text(0), r, 1)).collect())
    }

    /// Makes a received file visible under `keys`. Blocking.
    pub fn commit(
        &self,
        received: Received,
        keys: &[SymbolKey],
        module: &ModuleId,
    ) -> anyhow::Result<Committed> {
        let _claim = self.claim(&received.sha256)?;
        let duplicate = keys.iter().all(
            |k| matches!(self.get(k.normalized()), Ok(Some(s)) if s.sha256 == received.sha256),
        );
        if duplicate {
            let _ = std::fs::remove_file(&received.path);
            return Ok(Committed::Duplicate);
        }
        let created = !self.blobs.exists(&received.sha256)?;
        if created {
            // Noted first: a crash before the rows below leaves a note that start-up uses
            // to remove the blob, instead of an unreferenced file forever.
            self.db.execute(
                "INSERT INTO upload_new_blobs (sha256) VALUES (?1)",
                p![&received.sha256],
            )?;
            let file = std::fs::File::open(&received.path)?;
            self.blobs.put(&file, received.path, &received.sha256)?;
        } else {
            let _ = std::fs::remove_file(&received.path);
        }
        let now = unix_millis(SystemTime::now());
        let debug_file = module.debug_file.to_lowercase();
        let debug_id = module.debug_id.replace('-', "").to_lowercase();
        let code_file = module.code_file.as_deref().map(str::to_lowercase);
        let code_id = module.code_id.as_deref().map(str::to_lowercase);
        let replaced = self.db.tx(|tx| {
            let mut replaced = Vec::new();
            for key in keys {
                let display = key.to_string();
                let old = tx.query_opt(
                    "SELECT sha256 FROM symbols WHERE key = ?1",
                    p![key.normalized()],
                )?;
                replaced.extend(old.map(|r| r.text(0)).filter(|o| *o != received.sha256));
                tx.execute(
                    "INSERT INTO symbols
                     (key, display, sha256, size, uploaded_at, kind, debug_file, debug_id, code_file, code_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (key) DO UPDATE SET display = excluded.display,
                     sha256 = excluded.sha256, size = excluded.size,
                     uploaded_at = excluded.uploaded_at, kind = excluded.kind,
                     debug_file = excluded.debug_file, debug_id = excluded.debug_id,
                     code_file = excluded.code_file, code_id = excluded.code_id",
                    p![
                        key.normalized(),
                        &display,
                        &received.sha256,
                        received.size,
                        now,
                        &module.kind,
                        &debug_file,
                        &debug_id,
                        code_file.as_deref(),
                        code_id.as_deref(),
                    ],
                )?;
            }
            if created {
                tx.execute(
                    "DELETE FROM upload_new_blobs WHERE sha256 = ?1",
                    p![&received.sha256],
                )?;
            }
            bump(tx)?;
            Ok(replaced)
        })?;
        self.changes.publish(&super::StoreChange::Keys {
            keys,
            code: code_file.as_deref().zip(code_id.as_deref()),
        });
        for old in replaced {
            self.collect_blob(&old);
        }
        Ok(Committed::Stored)
    }

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

    /// Removes blobs that uploads cut short by a crash had put in place. Blocking; start-up
    /// (and periodically with a shared store, where another instance may have crashed).
    pub fn recover_uploads(&self) -> DbResult<usize> {
        let shas: Vec<String> = self
            .db
            .query("SELECT DISTINCT sha256 FROM upload_new_blobs", p![])?
            .iter()
            .map(|r| r.text(0))
            .collect();
        let mut n = 0;
        for sha in &shas {
            // A claimed blob belongs to an upload in progress: its note stays.
            if self.collect_blob(sha) {
                self.db
                    .execute("DELETE FROM upload_new_blobs WHERE sha256 = ?1", p![sha])?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A number that changes whenever another process or instance changed what lookups
    /// answer; a change means memory may be stale.
    pub fn change_count(&self) -> DbResult<i64> {
        let mut conn = self.db.conn();
        if conn.is_postgres() {
            Ok(conn
                .query_opt("SELECT n FROM changes WHERE id = 1", p![])?
                .map_or(0, |r| r.int(0)))
        } else {
            // Counts commits by *other* connections only: this process's own writes
            // already updated its memory.
            Ok(conn
                .query_opt("PRAGMA data_version", p![])?
                .map_or(0, |r| r.int(0)))
        }
    }

    // ---- upload sessions -------------------------------------------------------------

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn count_sessions(&self) -> DbResult<u64> {
        let now = unix_millis(SystemTime::now());
        Ok(self
            .db
            .query_opt("SELECT COUNT(*) FROM uploads WHERE expires > ?1", p![now])?
            .map_or(0, |r| r.int(0) as u64))
    }

    pub fn create_session(&self, s: &Session) -> DbResult<()> {
        self.db.execute(
            "INSERT INTO uploads (upload_key, token_sha256, expires) VALUES (?1, ?2, ?3)",
            p![&s.upload_key, &s.token_sha256, unix_millis(s.expires)],
        )?;
        Ok(())
    }

    /// A live (unexpired) session.
    pub fn session(&self, upload_key: &str) -> DbResult<Option<Session>> {
        let now = unix_millis(SystemTime::now());
        let row = self.db.query_opt(
            "SELECT token_sha256, expires, size, sha256 FROM uploads
             WHERE upload_key = ?1 AND expires > ?2",
            p![upload_key, now],
        )?;
        Ok(row.map(|r| Session {
            upload_key: upload_key.to_owned(),
            token_sha256: r.text(0),
            expires: from_millis(r.int(1)),
            received: r.opt_int(2).zip(r.opt_text(3)).map(|(n, h)| (n as u64, h)),
        }))
    }

    /// Keeps the PUT body of a session where any instance can complete it, then records it;
    /// false if the session already had one (tokens are single-use).
    pub fn save_received(&self, upload_key: &str, received: Received) -> anyhow::Result<bool> {
        match self.blobs.bucket() {
            None => {
                received
                    .path
                    .persist(self.received_path(upload_key))
                    .map_err(|e| e.error)?;
            }
            Some(b) => {
                let file = std::fs::File::open(&received.path)?;
                b.upload_file(&file, &b.upload_path(upload_key))?;
            }
        }
        Ok(self.db.execute(
            "UPDATE uploads SET size = ?2, sha256 = ?3 WHERE upload_key = ?1 AND size IS NULL",
            p![upload_key, received.size, &received.sha256],
        )? == 1)
    }

    /// The PUT body of a session, as a local file (fetched from the bucket when shared).
    pub fn take_received(
        &self,
        upload_key: &str,
        size: u64,
        sha256: &str,
    ) -> anyhow::Result<Received> {
        let path = match self.blobs.bucket() {
            None => tempfile::TempPath::try_from_path(self.received_path(upload_key))?,
            Some(b) => {
                let done = b.download(&b.upload_path(upload_key), Some(size))?;
                let (temp, sha) = (done.temp, done.sha256);
                if sha != sha256 {
                    anyhow::bail!("the stored body of upload {upload_key} changed since its PUT");
                }
                temp
            }
        };
        Ok(Received {
            path,
            size,
            sha256: sha256.to_owned(),
        })
    }

    fn received_path(&self, upload_key: &str) -> PathBuf {
        self.uploads_dir().join(upload_key)
    }

    pub fn end_session(&self, upload_key: &str) -> DbResult<()> {
        self.db
            .execute("DELETE FROM uploads WHERE upload_key = ?1", p![upload_key])?;
        match self.blobs.bucket() {
            None => {
                let _ = std::fs::remove_file(self.received_path(upload_key));
            }
            Some(b) => {
                let _ = b.delete(&b.upload_path(upload_key));
            }
        }
        Ok(())
    }

    /// Deletes expired sessions and their files, and local files no session owns. Blocking.
    pub fn expire_sessions(&self) -> DbResult<usize> {
        let now = unix_millis(SystemTime::now());
        let expired: Vec<String> = self
            .db
            .query(
                "SELECT upload_key FROM uploads WHERE expires <= ?1",
                p![now],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
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
        // Shared claims whose writer died.
        self.db
            .execute("DELETE FROM blob_claims WHERE until <= ?1", p![now])?;
        Ok(expired.len())
    }
}

/// Counts a change other instances must notice (they poll [`SymbolStore::change_count`]).
pub(super) fn bump(tx: &mut super::db::Conn) -> DbResult<()> {
    tx.execute("UPDATE changes SET n = n + 1 WHERE id = 1", p![])
        .map(drop)
}

/// Brings a store database written by an older symhub up to the current columns.
fn migrate_sqlite(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open store database {}", path.display()))?;
    let has_packages: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'packages'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if has_packages {
        let has_lease: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('packages') WHERE name = 'lease_until'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if !has_lease {
            conn.execute_batch(
                "ALTER TABLE packages ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0",
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(store: &SymbolStore, bytes: &[u8]) -> Received {
        use sha2::Digest;
        let path = store
            .blobs
            .dir()
            .tmp_dir()
            .join(format!("r{}", bytes.len()));
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
            .db
            .execute(
                "INSERT INTO upload_new_blobs (sha256) VALUES (?1)",
                p![&sha],
            )
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
        let claim = store.claim(&sha).unwrap();
        store.collect_blob(&sha);
        assert!(blob.exists(), "a claimed blob survives collection");
        drop(claim);
        store.collect_blob(&sha);
        assert!(!blob.exists());
    }
}
