//! `symhub migrate`: copies a single-node store (data directory) into a shared one (bucket
//! and PostgreSQL), resumably. Blobs go first, each hashed before it is sent and skipped if
//! the bucket already has it; then the key rows (a key the shared store already has is kept:
//! it is newer); then each live package, as an ingest that goes live in one transaction and
//! is skipped if a package of that name is already live. Interrupted at any point, a rerun
//! carries on, and the shared store never has a row whose blob is missing.

use std::io::Read;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::db::p;
use super::db::DbResult;
use super::db::Row;
use super::packages::PackageKey;
use super::symbols::{bump, symbol_columns, SymbolStore};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Migrated {
    pub blobs_sent: u64,
    pub blobs_present: u64,
    pub bytes_sent: u64,
    pub symbols: u64,
    pub packages: u64,
    pub packages_present: u64,
}

const PAGE: usize = 1000;

/// Copies `src` (local) into `dst` (shared). `report` receives one progress line at a time.
pub fn migrate(
    src: &SymbolStore,
    dst: &SymbolStore,
    report: &dyn Fn(&str),
) -> anyhow::Result<Migrated> {
    let bucket = dst
        .blobs
        .bucket()
        .context("the destination is not a bucket store (storage.store = \"s3://…\")")?;
    let mut done = Migrated::default();
    let present = bucket.list_names("blobs")?;
    let blobs = src.db.query(
        "SELECT sha256, MAX(size) FROM symbols GROUP BY sha256
         UNION SELECT sha256, MAX(size) FROM package_keys GROUP BY sha256",
        p![],
    )?;
    let total = blobs.len();
    for (i, row) in blobs.iter().enumerate() {
        let (sha, size) = (row.text(0), row.int(1) as u64);
        if present.contains(&sha) {
            done.blobs_present += 1;
            continue;
        }
        let path = src.blob_path(&sha);
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("blob {sha} of the source store: {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = file.read(&mut buf)?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        if n != size || hex::encode(hasher.finalize()) != sha {
            anyhow::bail!(
                "blob {} of the source store is damaged ({n} bytes, {size} expected, or its \
                 hash differs): not copied; restore it or remove its keys first",
                path.display()
            );
        }
        bucket.put_blob_file(&file, &sha)?;
        done.blobs_sent += 1;
        done.bytes_sent += size;
        if done.blobs_sent % 100 == 0 || i + 1 == total {
            report(&format!(
                "blobs: {}/{total} ({} sent, {} MiB)",
                i + 1,
                done.blobs_sent,
                done.bytes_sent >> 20
            ));
        }
    }
    report(&format!(
        "blobs: {total}/{total} ({} sent, {} already there)",
        done.blobs_sent, done.blobs_present
    ));

    let mut after = String::new();
    loop {
        let rows = src.symbol_rows(&after, PAGE)?;
        let Some(last) = rows.last() else { break };
        after = last.key();
        let inserted = dst.insert_new_rows(&rows)?;
        done.symbols += inserted;
        report(&format!("symbols: {} copied (up to {after})", done.symbols));
    }

    for info in src.list_packages()? {
        if dst.package(&info.name)?.is_some() {
            done.packages_present += 1;
            continue;
        }
        let Some((seq, _)) = src.package(&info.name)? else {
            continue;
        };
        let new = dst.begin_package(&info.name, info.size)?;
        let mut after = String::new();
        loop {
            let keys: Vec<PackageKey> = src.package_keys(seq, &after, 10_000)?;
            let Some(last) = keys.last() else { break };
            after = last.key.clone();
            dst.add_package_keys(new, &keys)?;
        }
        dst.activate_package(new, info.key_count, info.blob_bytes, true)?;
        done.packages += 1;
        report(&format!(
            "package {}: {} keys copied",
            info.name, info.key_count
        ));
    }
    Ok(done)
}

/// A whole `symbols` row, as `symhub migrate` copies it.
pub(super) struct SymbolRow(Row);

impl SymbolStore {
    /// Whole rows in key order after `after`, at most `limit`.
    pub(super) fn symbol_rows(&self, after: &str, limit: usize) -> DbResult<Vec<SymbolRow>> {
        let rows = self.db.query(
            concat!(
                "SELECT ",
                symbol_columns!(),
                " FROM symbols WHERE key > ?1 ORDER BY key LIMIT ?2"
            ),
            p![after, limit as i64],
        )?;
        Ok(rows.into_iter().map(SymbolRow).collect())
    }

    /// Inserts rows copied from another store, keeping any key this store already has, in
    /// one transaction. Returns how many were new.
    pub(super) fn insert_new_rows(&self, rows: &[SymbolRow]) -> DbResult<u64> {
        self.db.tx(|tx| {
            let mut n = 0;
            for SymbolRow(r) in rows {
                n += tx.execute(
                    concat!(
                        "INSERT INTO symbols (",
                        symbol_columns!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING"
                    ),
                    p![
                        &r.text(0),
                        &r.text(1),
                        &r.text(2),
                        r.int(3),
                        r.int(4),
                        &r.text(5),
                        &r.text(6),
                        &r.text(7),
                        r.opt_text(8).as_deref(),
                        r.opt_text(9).as_deref(),
                        r.opt_text(10).as_deref(),
                        r.int(11),
                    ],
                )?;
            }
            bump(tx)?;
            Ok(n)
        })
    }
}

impl SymbolRow {
    pub(super) fn key(&self) -> String {
        self.0.text(0)
    }
}
