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
use std::time::SystemTime;

use anyhow::Context;
use symhub_core::SymbolKey;

use super::blobs::Blobs;
use super::db::{p, Db, DbResult, DbTarget, Row};
use super::schema::{migrate_sqlite, PG_SCHEMA, SQLITE_SCHEMA};
use super::unix_millis;
use crate::config::StorageConfig;

/// The `symbols` columns, in the order every statement that writes or copies whole rows
/// uses them (commits here, `symhub migrate`).
macro_rules! symbol_columns {
    () => {
        "key, display, sha256, size, uploaded_at, kind, debug_file, debug_id, code_file, code_id, \
         uploader, pinned"
    };
}
pub(super) use symbol_columns;

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

/// Where a commit comes from: the upload transaction it joins and the name of the API key
/// that sent it ([`crate::auth::Caller`]), both recorded with its keys.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub transaction: Option<i64>,
    pub uploader: Option<std::sync::Arc<str>>,
}

impl Origin {
    pub fn new(transaction: Option<i64>, uploader: Option<std::sync::Arc<str>>) -> Self {
        Self {
            transaction,
            uploader,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// New or replaced bytes.
    Stored,
    /// The same bytes were already stored under every key.
    Duplicate,
}

pub struct SymbolStore {
    pub(super) root: PathBuf,
    pub(super) blobs: Blobs,
    pub(super) db: Db,
    /// Blobs that an upload or an ingest is about to point keys at. Garbage collection
    /// leaves them alone, so a blob found "already there" cannot vanish before the rows
    /// that use it are written. A shared database also records them in `blob_claims`, for
    /// the other instances.
    pub(super) claims: Mutex<std::collections::HashMap<String, usize>>,
    /// Told of every change this process makes (see [`super::changes`]).
    pub changes: super::changes::ChangeFeed,
}

pub(super) use super::time::from_millis;

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
        if let Some(uploaded) = self.get_uploaded(key)? {
            return Ok(Some(uploaded));
        }
        let packaged = self.db.read_query_opt(
            "SELECT pk.display, pk.sha256, pk.size, p.added_at
             FROM package_keys pk JOIN packages p ON p.seq = pk.seq
             WHERE pk.key = ?1 AND p.state = 'active'
             ORDER BY pk.derived, p.priority LIMIT 1",
            p![key],
        )?;
        Ok(packaged.map(|r| stored(key.to_owned(), &r, 0)))
    }

    /// The uploaded file for a key, not a package's: what an upload that finds the same
    /// bytes may count as already there (a package can be removed or replaced under it).
    pub fn get_uploaded(&self, key: &str) -> DbResult<Option<StoredSymbol>> {
        let uploaded = self.db.read_query_opt(
            "SELECT display, sha256, size, uploaded_at FROM symbols WHERE key = ?1",
            p![key],
        )?;
        Ok(uploaded.map(|r| stored(key.to_owned(), &r, 0)))
    }

    /// The ELF binary uploaded with build id `build_id` (lowercase hex, as the upload named
    /// it): the build-id index debuginfod's `executable` needs, since its requests carry no
    /// file name. Indexed (`symbols_build_id`).
    pub fn executable_by_build_id(&self, build_id: &str) -> DbResult<Option<StoredSymbol>> {
        // The id as uploaded, and as SSQP keys spell it (zero-padded to 20 bytes: lld's
        // 8-byte and md5's 16-byte ids).
        let padded = symhub_core::BuildId::parse_hex(build_id)
            .ok()
            .map(|id| symhub_core::debuginfod::ssqp::ssqp_build_id(&id));
        let ids =
            [Some(build_id), padded.as_deref()].map(|i| i.map(|i| format!("elf-buildid-{i}")));
        let rows = self.db.read_query(
            "SELECT key, display, sha256, size, uploaded_at FROM symbols
             WHERE debug_id = ?1 AND kind = 'ELF'",
            p![build_id],
        )?;
        // The upload's `<name>/elf-buildid-<id>/<name>` key, not its `<name>/<id>/<name>`.
        Ok(rows
            .iter()
            .find(|r| {
                let key = r.text(0);
                let segment = key.split('/').nth(1);
                ids.iter().flatten().any(|id| Some(id.as_str()) == segment)
            })
            .map(|r| stored(r.text(0), r, 1)))
    }

    /// Stored symbols whose key starts with `prefix` (case-insensitive), in key order.
    pub fn list(&self, prefix: &str, after: &str, limit: usize) -> DbResult<Vec<StoredSymbol>> {
        let prefix = prefix.to_lowercase();
        // The largest code point bounds the range, so the primary key index serves it.
        let end = format!("{prefix}\u{10FFFF}");
        // One lower bound, so the index walk starts at the cursor, not at the prefix.
        let after = after.to_lowercase();
        let rows = if after >= prefix {
            self.db.query(
                "SELECT key, display, sha256, size, uploaded_at FROM symbols
                 WHERE key > ?1 AND key < ?2 ORDER BY key LIMIT ?3",
                p![&after, &end, limit as i64],
            )?
        } else {
            self.db.query(
                "SELECT key, display, sha256, size, uploaded_at FROM symbols
                 WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
                p![&prefix, &end, limit as i64],
            )?
        };
        Ok(rows.iter().map(|r| stored(r.text(0), r, 1)).collect())
    }

    /// Makes a received file visible under `keys`. Blocking.
    pub fn commit(
        &self,
        received: Received,
        keys: &[SymbolKey],
        module: &ModuleId,
    ) -> anyhow::Result<Committed> {
        self.commit_in(received, keys, module, &Origin::default())
    }

    /// [`Self::commit`] recording who uploaded it and, with `origin.transaction`, as part of
    /// that upload transaction ([`super::transactions`]), which records the keys in the same
    /// SQL transaction as their rows (also when the bytes were already there). An unknown or
    /// deleted transaction fails the commit with a
    /// [`super::transactions::TransactionError`].
    pub fn commit_in(
        &self,
        received: Received,
        keys: &[SymbolKey],
        module: &ModuleId,
        origin: &Origin,
    ) -> anyhow::Result<Committed> {
        let transaction = origin.transaction;
        if let Some(id) = transaction {
            self.check_transaction(id)?;
        }
        let _claim = self.claim(&received.sha256)?;
        let duplicate = keys.iter().all(|k| {
            matches!(self.get_uploaded(k.normalized()), Ok(Some(s)) if s.sha256 == received.sha256)
        });
        if duplicate {
            // The run still records the keys; an upload outside any run pins them. `false`:
            // the rows changed meanwhile, so this is a commit after all.
            let recorded = match transaction {
                Some(id) => self.record_held(id, keys, &received.sha256, received.size)?,
                None => {
                    self.pin(keys, &received.sha256)?;
                    true
                }
            };
            if recorded {
                let _ = std::fs::remove_file(&received.path);
                return Ok(Committed::Duplicate);
            }
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
            if let Some(id) = transaction {
                if let Err(refused) = super::transactions::open_for_commit(tx, id)? {
                    return Ok(Err(refused));
                }
            }
            let mut replaced = Vec::new();
            for key in keys {
                let display = key.to_string();
                let old = tx.query_opt(
                    "SELECT sha256 FROM symbols WHERE key = ?1",
                    p![key.normalized()],
                )?;
                replaced.extend(old.map(|r| r.text(0)).filter(|o| *o != received.sha256));
                tx.execute(
                    concat!(
                        "INSERT INTO symbols (",
                        symbol_columns!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                         ON CONFLICT (key) DO UPDATE SET display = excluded.display,
                         sha256 = excluded.sha256, size = excluded.size,
                         uploaded_at = excluded.uploaded_at, kind = excluded.kind,
                         debug_file = excluded.debug_file, debug_id = excluded.debug_id,
                         code_file = excluded.code_file, code_id = excluded.code_id,
                         uploader = excluded.uploader,
                         pinned = CASE WHEN symbols.sha256 = excluded.sha256
                                  AND symbols.pinned = 1 THEN 1 ELSE excluded.pinned END"
                    ),
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
                        origin.uploader.as_deref(),
                        origin.transaction.is_none(),
                    ],
                )?;
                // Found now: the missing-symbols report stops sending people after it.
                tx.execute(
                    "DELETE FROM missing_symbols WHERE key = ?1",
                    p![key.normalized()],
                )?;
            }
            if let Some(id) = transaction {
                super::transactions::record_transaction_keys(
                    tx,
                    id,
                    keys,
                    &received.sha256,
                    received.size,
                )?;
            }
            if created {
                tx.execute(
                    "DELETE FROM upload_new_blobs WHERE sha256 = ?1",
                    p![&received.sha256],
                )?;
            }
            bump(tx)?;
            Ok(Ok(replaced))
        })?;
        // The transaction was deleted between the early check and the rows.
        let replaced = match replaced {
            Ok(r) => r,
            Err(refused) => {
                drop(_claim);
                if created {
                    self.abandon_new_blob(&received.sha256);
                }
                return Err(refused.into());
            }
        };
        self.changes.publish(&super::StoreChange::Keys {
            keys,
            code: code_file.as_deref().zip(code_id.as_deref()),
        });
        for old in replaced {
            self.collect_blob(&old);
        }
        Ok(Committed::Stored)
    }

    /// Marks `keys`, which hold `sha256`, as uploaded outside any transaction: no
    /// transaction's deletion (or expiry) removes them from now on.
    fn pin(&self, keys: &[SymbolKey], sha256: &str) -> DbResult<()> {
        self.db.tx(|tx| {
            for key in keys {
                tx.execute(
                    "UPDATE symbols SET pinned = 1 WHERE key = ?1 AND sha256 = ?2 AND pinned = 0",
                    p![key.normalized(), sha256],
                )?;
            }
            Ok(())
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
}

/// Counts a change other instances must notice (they poll [`SymbolStore::change_count`]).
pub(super) fn bump(tx: &mut super::db::Conn) -> DbResult<()> {
    tx.execute("UPDATE changes SET n = n + 1 WHERE id = 1", p![])
        .map(drop)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `bytes` as an upload received into `store`'s temp dir.
    pub(in crate::store) fn received(store: &SymbolStore, bytes: &[u8]) -> Received {
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
