//! The store as the console searches and shows it: stored keys found by debug file, debug
//! id, code file, code id or key prefix (each an indexed lookup, so a store of millions of
//! keys answers at once), and one key's whole record: its module, who uploaded it, which
//! live transactions hold its bytes, which other keys share them, and the package that
//! serves it when no upload does.

use super::db::{p, DbResult, Row};
use super::symbols::{from_millis, SymbolStore};

/// A stored key's row, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SymbolInfo {
    /// As uploaded (display form).
    pub key: String,
    pub size: u64,
    pub sha256: String,
    #[serde(serialize_with = "super::time::serialize")]
    pub uploaded_at: std::time::SystemTime,
    /// The API key name (or local user) that uploaded it; `None` before symhub kept it.
    pub uploader: Option<String>,
    /// `upload`, or `transaction` when a live upload transaction holds these bytes.
    pub source: &'static str,
    pub kind: String,
    pub debug_file: String,
    pub debug_id: String,
    pub code_file: Option<String>,
    pub code_id: Option<String>,
}

/// One key's record beyond its row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SymbolDetail {
    #[serde(flatten)]
    pub info: SymbolInfo,
    /// Live transactions that recorded these bytes under this key.
    pub transactions: Vec<i64>,
    /// Other stored keys with the same bytes (at most 20).
    pub other_keys: Vec<String>,
}

/// A key a package serves.
#[derive(Debug, Clone)]
pub struct PackagedKey {
    pub key: String,
    pub package: String,
    pub sha256: String,
    pub size: u64,
    pub added_at: std::time::SystemTime,
}

macro_rules! info_columns {
    () => {
        "s.key, s.display, s.size, s.sha256, s.uploaded_at, s.uploader, s.kind, s.debug_file,
         s.debug_id, s.code_file, s.code_id,
         EXISTS (SELECT 1 FROM transaction_keys tk JOIN transactions t ON t.id = tk.id
                 WHERE tk.key = s.key AND tk.sha256 = s.sha256 AND t.state = 'active')"
    };
}

/// The rows whose `column` equals `?1`, after key `?2`, `?3` at most, in key order.
macro_rules! matching {
    ($column:literal) => {
        concat!(
            "SELECT ",
            info_columns!(),
            " FROM symbols s WHERE s.",
            $column,
            " = ?1 AND s.key > ?2 ORDER BY s.key LIMIT ?3"
        )
    };
}

fn info(r: &Row) -> SymbolInfo {
    SymbolInfo {
        key: r.text(1),
        size: r.int(2) as u64,
        sha256: r.text(3),
        uploaded_at: from_millis(r.int(4)),
        uploader: r.opt_text(5),
        source: if r.int(11) != 0 {
            "transaction"
        } else {
            "upload"
        },
        kind: r.text(6),
        debug_file: r.text(7),
        debug_id: r.text(8),
        code_file: r.opt_text(9),
        code_id: r.opt_text(10),
    }
}

impl SymbolStore {
    /// Stored keys matching `query` exactly as a debug file, debug id (dashes ignored), code
    /// file or code id, or as a key prefix; all keys when `query` is empty. Key order, after
    /// `after` (a normalized key), `limit` at most. Each way of matching is its own indexed
    /// query, bounded by `limit`, and the answers are merged: one `OR` over all of them would
    /// sort every key of a broad prefix (a second for a million keys, `bench/console`).
    pub fn search(&self, query: &str, after: &str, limit: usize) -> DbResult<Vec<SymbolInfo>> {
        let q = symhub_core::key::fold_case(query.trim());
        let id = q.replace('-', "");
        let end = format!("{q}\u{10FFFF}");
        let after = symhub_core::key::fold_case(after);
        let n = limit as i64;
        // One lower bound, so SQLite walks the key index from it (given two, it may start
        // from the prefix and filter its way to the cursor: 80 ms deep into a million keys).
        let mut rows = if after.as_str() >= q.as_str() {
            self.db.query(
                concat!(
                    "SELECT ",
                    info_columns!(),
                    " FROM symbols s WHERE s.key > ?1 AND s.key < ?2 ORDER BY s.key LIMIT ?3"
                ),
                p![&after, &end, n],
            )?
        } else {
            self.db.query(
                concat!(
                    "SELECT ",
                    info_columns!(),
                    " FROM symbols s WHERE s.key >= ?1 AND s.key < ?2 ORDER BY s.key LIMIT ?3"
                ),
                p![&q, &end, n],
            )?
        };
        if !q.is_empty() {
            for (sql, value) in [
                (matching!("debug_file"), &q),
                (matching!("debug_id"), &id),
                (matching!("code_file"), &q),
                (matching!("code_id"), &id),
            ] {
                rows.extend(self.db.query(sql, p![value, &after, n])?);
            }
            rows.sort_by_key(|r| r.text(0));
            rows.dedup_by_key(|r| r.text(0));
            rows.truncate(limit);
        }
        Ok(rows.iter().map(info).collect())
    }

    /// Stored key `key` (normalized) with its record.
    pub fn symbol_detail(&self, key: &str) -> DbResult<Option<SymbolDetail>> {
        let Some(row) = self.db.query_opt(
            concat!(
                "SELECT ",
                info_columns!(),
                " FROM symbols s WHERE s.key = ?1"
            ),
            p![key],
        )?
        else {
            return Ok(None);
        };
        let info = info(&row);
        let transactions = self
            .db
            .query(
                "SELECT tk.id FROM transaction_keys tk JOIN transactions t ON t.id = tk.id
                 WHERE tk.key = ?1 AND tk.sha256 = ?2 AND t.state = 'active' ORDER BY tk.id",
                p![key, &info.sha256],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect();
        let other_keys = self
            .db
            .query(
                "SELECT display FROM symbols WHERE sha256 = ?1 AND key <> ?2
                 ORDER BY key LIMIT 20",
                p![&info.sha256, key],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
        Ok(Some(SymbolDetail {
            info,
            transactions,
            other_keys,
        }))
    }

    /// The active package that serves `key` (normalized), the one of highest priority.
    pub fn packaged_key(&self, key: &str) -> DbResult<Option<PackagedKey>> {
        Ok(self
            .db
            .query_opt(
                "SELECT pk.display, p.name, pk.sha256, pk.size, p.added_at
                 FROM package_keys pk JOIN packages p ON p.seq = pk.seq
                 WHERE pk.key = ?1 AND p.state = 'active' ORDER BY p.priority LIMIT 1",
                p![key],
            )?
            .map(|r| PackagedKey {
                key: r.text(0),
                package: r.text(1),
                sha256: r.text(2),
                size: r.int(3) as u64,
                added_at: from_millis(r.int(4)),
            }))
    }

    /// Keys and bytes in the store (uploads; packages' own keys are not counted).
    pub fn totals(&self) -> DbResult<(u64, u64)> {
        Ok(self
            .db
            .query_opt(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM symbols",
                p![],
            )?
            .map_or((0, 0), |r| (r.int(0) as u64, r.int(1) as u64)))
    }
}
