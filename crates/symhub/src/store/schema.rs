//! The store's tables, written twice (SQLite for a data dir, PostgreSQL for a shared store)
//! because the two dialects differ in types and indexes, and the one-time migration of
//! SQLite stores made before a column existed. New tables need no migration: both schemas
//! are applied with `CREATE … IF NOT EXISTS` every time a store opens.

use std::path::Path;

use anyhow::Context;

pub(super) const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS symbols (
         key TEXT PRIMARY KEY,          -- normalized (lowercase)
         display TEXT NOT NULL,         -- as uploaded
         sha256 TEXT NOT NULL,
         size INTEGER NOT NULL,
         uploaded_at INTEGER NOT NULL,  -- unix ms
         kind TEXT NOT NULL,
         debug_file TEXT NOT NULL,      -- lowercase
         debug_id TEXT NOT NULL,        -- lowercase, no dashes
         code_file TEXT,                -- lowercase
         code_id TEXT,                  -- lowercase
         uploader TEXT,                 -- name of the API key that uploaded it (keys.rs)
         pinned INTEGER NOT NULL DEFAULT 0 -- 1: these bytes were uploaded outside any
                                        -- transaction, so no transaction's deletion removes them
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS symbols_module ON symbols(debug_file, debug_id);
     CREATE INDEX IF NOT EXISTS symbols_build_id ON symbols(debug_id, kind);
     CREATE INDEX IF NOT EXISTS symbols_code ON symbols(code_id, code_file);
     CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(sha256);
     CREATE INDEX IF NOT EXISTS symbols_code_file ON symbols(code_file);
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
     INSERT INTO changes (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING;
     -- Upload transactions (store/transactions.rs). AUTOINCREMENT: an id is never reused,
     -- so one named in a script or a log always means the same run.
     CREATE TABLE IF NOT EXISTS transactions (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         product TEXT NOT NULL,
         version TEXT NOT NULL,
         comment TEXT NOT NULL,
         uploader TEXT NOT NULL,
         created_at INTEGER NOT NULL,   -- unix ms
         state TEXT NOT NULL,           -- active | deleted
         deleted_at INTEGER,            -- unix ms
         expires_at INTEGER             -- unix ms; removed by retention after it
     );
     CREATE INDEX IF NOT EXISTS transactions_product ON transactions(product, version);
     CREATE TABLE IF NOT EXISTS transaction_keys (
         id INTEGER NOT NULL,
         key TEXT NOT NULL,             -- normalized
         display TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         size INTEGER NOT NULL,
         PRIMARY KEY (id, key)
     ) WITHOUT ROWID;
     -- For: did another transaction record these bytes under this key?
     CREATE INDEX IF NOT EXISTS transaction_keys_key ON transaction_keys(key, sha256);
     -- The missing-symbol ledger (store/missing.rs): keys that ended in a 404.
     CREATE TABLE IF NOT EXISTS missing_symbols (
         key TEXT PRIMARY KEY,          -- normalized
         display TEXT NOT NULL,
         first_seen INTEGER NOT NULL,   -- unix ms
         last_seen INTEGER NOT NULL,
         count INTEGER NOT NULL,
         answers TEXT NOT NULL,         -- what the upstreams answered, last time
         clients INTEGER NOT NULL       -- bit set of client kinds (missing.rs)
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS missing_count ON missing_symbols(count);
     CREATE INDEX IF NOT EXISTS missing_last_seen ON missing_symbols(last_seen);
     -- Named API keys (store/keys.rs): only the SHA-256 of a key is kept.
     CREATE TABLE IF NOT EXISTS api_keys (
         name TEXT PRIMARY KEY,
         sha256 TEXT NOT NULL UNIQUE,
         scope TEXT NOT NULL,           -- download | upload | admin
         created_at INTEGER NOT NULL,   -- unix ms
         expires_at INTEGER,            -- unix ms
         revoked_at INTEGER             -- unix ms
     );
     CREATE UNIQUE INDEX IF NOT EXISTS api_keys_name_nocase ON api_keys(lower(name));";

/// The same tables for PostgreSQL: `COLLATE "C"` keeps key order bytewise, as in SQLite, so
/// listings page identically.
pub(super) const PG_SCHEMA: &str = r#"CREATE TABLE IF NOT EXISTS symbols (
         key TEXT COLLATE "C" PRIMARY KEY,
         display TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         size BIGINT NOT NULL,
         uploaded_at BIGINT NOT NULL,
         kind TEXT NOT NULL,
         debug_file TEXT NOT NULL,
         debug_id TEXT NOT NULL,
         code_file TEXT,
         code_id TEXT,
         uploader TEXT,
         pinned BIGINT NOT NULL DEFAULT 0
     );
     ALTER TABLE symbols ADD COLUMN IF NOT EXISTS uploader TEXT;
     ALTER TABLE symbols ADD COLUMN IF NOT EXISTS pinned BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX IF NOT EXISTS symbols_module ON symbols(debug_file, debug_id);
     CREATE INDEX IF NOT EXISTS symbols_build_id ON symbols(debug_id, kind);
     CREATE INDEX IF NOT EXISTS symbols_code ON symbols(code_id, code_file);
     CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(sha256);
     CREATE INDEX IF NOT EXISTS symbols_code_file ON symbols(code_file);
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
     INSERT INTO changes (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING;
     CREATE TABLE IF NOT EXISTS transactions (
         id BIGSERIAL PRIMARY KEY,
         product TEXT NOT NULL,
         version TEXT NOT NULL,
         comment TEXT NOT NULL,
         uploader TEXT NOT NULL,
         created_at BIGINT NOT NULL,
         state TEXT NOT NULL,
         deleted_at BIGINT,
         expires_at BIGINT
     );
     ALTER TABLE transactions ADD COLUMN IF NOT EXISTS expires_at BIGINT;
     CREATE INDEX IF NOT EXISTS transactions_product ON transactions(product, version);
     CREATE TABLE IF NOT EXISTS transaction_keys (
         id BIGINT NOT NULL,
         key TEXT COLLATE "C" NOT NULL,
         display TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         size BIGINT NOT NULL,
         PRIMARY KEY (id, key)
     );
     CREATE INDEX IF NOT EXISTS transaction_keys_key ON transaction_keys(key, sha256);
     CREATE TABLE IF NOT EXISTS missing_symbols (
         key TEXT COLLATE "C" PRIMARY KEY,
         display TEXT NOT NULL,
         first_seen BIGINT NOT NULL,
         last_seen BIGINT NOT NULL,
         count BIGINT NOT NULL,
         answers TEXT NOT NULL,
         clients BIGINT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS missing_count ON missing_symbols(count);
     CREATE INDEX IF NOT EXISTS missing_last_seen ON missing_symbols(last_seen);
     CREATE TABLE IF NOT EXISTS api_keys (
         name TEXT COLLATE "C" PRIMARY KEY,
         sha256 TEXT NOT NULL UNIQUE,
         scope TEXT NOT NULL,
         created_at BIGINT NOT NULL,
         expires_at BIGINT,
         revoked_at BIGINT
     );
     CREATE UNIQUE INDEX IF NOT EXISTS api_keys_name_nocase ON api_keys(lower(name))"#;

/// Brings a store database written by an older symhub up to the current columns.
pub(super) fn migrate_sqlite(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open store database {}", path.display()))?;
    let has_column = |table: &str, column: &str| -> anyhow::Result<bool> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0),
        )? > 0)
    };
    let has_table = |table: &str| -> anyhow::Result<bool> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )? > 0)
    };
    // (table, column, definition) added since the table was first written.
    for (table, column, definition) in [
        ("packages", "lease_until", "INTEGER NOT NULL DEFAULT 0"),
        ("symbols", "uploader", "TEXT"),
        ("symbols", "pinned", "INTEGER NOT NULL DEFAULT 0"),
        ("transactions", "expires_at", "INTEGER"),
    ] {
        if has_table(table)? && !has_column(table, column)? {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}
