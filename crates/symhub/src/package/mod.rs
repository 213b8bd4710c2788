//! SSQP zip packages: ingest, replace, remove. A package is a zip with a root
//! `symbol_index.json` (an array of `{clientKey, blobPath}`) that publishes every mapped file
//! under its key; a NuGet `.snupkg` has no index, and its portable PDBs are keyed by their
//! own id (`<name>.pdb/<guid>FFFFFFFF/<name>.pdb`). Explicit mappings win over derived ones.
//!
//! Ingest order: the zip is received whole into a temp file (streamed, bounded), every entry
//! and the index are checked ([`archive::inspect`]), the mapped blobs are unpacked into the
//! store's content-addressed blobs, the key rows are written while the package is invisible,
//! and one transaction makes it live (replacing a package of the same name). A failure at
//! any step removes what the ingest wrote; a crash leaves rows that start-up deletes and
//! temp files that start-up removes.

pub mod archive;
mod service;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use symhub_core::SymbolKey;

use crate::config::PackageConfig;
use crate::store::packages::{Activation, PackageInfo, PackageKey};
use crate::store::SymbolStore;
pub use archive::PackageError;

/// What an ingest did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ingested {
    pub name: String,
    pub keys: u64,
    pub derived_keys: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub replaced: bool,
}

/// Progress of an ingest, for the command line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub entries_done: usize,
    pub entries_total: usize,
    pub bytes_done: u64,
}

pub struct Packages {
    store: Arc<SymbolStore>,
    pub config: PackageConfig,
}

/// Package names: what a file name or URL segment can safely be.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

impl Packages {
    pub fn new(store: Arc<SymbolStore>, config: PackageConfig) -> Self {
        Self { store, config }
    }

    pub fn store(&self) -> &Arc<SymbolStore> {
        &self.store
    }

    /// Deletes what a crash left half-done: unfinished packages, and blobs of uploads cut
    /// short. Blocking; run at start-up.
    pub fn recover(&self) -> anyhow::Result<()> {
        let n = self.store.recover_uploads()?;
        if n > 0 {
            tracing::info!(blobs = n, "checked blobs of uploads cut short by a crash");
        }
        for seq in self.store.unfinished_packages()? {
            tracing::info!(seq, "removing a package left half-ingested or half-removed");
            self.store.drop_package(seq)?;
        }
        Ok(())
    }

    /// Ingests the zip at `path` as package `name`. `may_replace`: whether a live package
    /// of that name may be replaced (checked when the new one goes live). Blocking.
    pub fn ingest_file(
        &self,
        name: &str,
        path: &Path,
        may_replace: bool,
        progress: &dyn Fn(Progress),
    ) -> Result<Ingested, PackageError> {
        if !valid_name(name) {
            return Err(PackageError::BadIndex(format!(
                "`{name}` is not a valid package name (letters, digits, `.`, `_`, `-`, `+`)"
            )));
        }
        let file = std::fs::File::open(path)?;
        let zip_size = file.metadata()?.len();
        if zip_size > self.config.max_size.as_u64() {
            return Err(PackageError::ZipTooBig(self.config.max_size.as_u64()));
        }
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| PackageError::NotZip(e.to_string()))?;
        let plan = archive::inspect(&mut zip, &self.config)?;
        let store_err = |e: crate::store::db::DbError| PackageError::Internal(e.into());
        // Registered (invisible) before any blob is written, so that whatever happens next,
        // `drop_package` (now, or at start-up after a crash) finds everything to undo.
        let seq = self
            .store
            .begin_package(name, zip_size)
            .map_err(store_err)?;
        let result = self.unpack_and_publish(seq, name, &mut zip, &plan, may_replace, progress);
        if result.is_err() {
            if let Err(e) = self.store.drop_package(seq) {
                tracing::error!(package = name, "cannot clean up a failed ingest: {e}");
            }
        }
        result
    }

    fn unpack_and_publish(
        &self,
        seq: i64,
        name: &str,
        zip: &mut zip::ZipArchive<std::fs::File>,
        plan: &archive::Plan,
        may_replace: bool,
        progress: &dyn Fn(Progress),
    ) -> Result<Ingested, PackageError> {
        let store_err = |e: crate::store::db::DbError| PackageError::Internal(e.into());
        // Each entry is unpacked once, however many keys share it.
        let mut wanted: Vec<usize> = plan.explicit.iter().map(|m| m.entry as usize).collect();
        wanted.extend(&plan.pdbs);
        wanted.sort_unstable();
        wanted.dedup();
        let pdbs: HashSet<usize> = plan.pdbs.iter().copied().collect();
        let note = |sha: &str| self.store.note_new_blob(seq, sha).map_err(store_err);
        let mut blobs: HashMap<usize, archive::Blob> = HashMap::with_capacity(wanted.len());
        let mut bytes_done = 0;
        for (n, &i) in wanted.iter().enumerate() {
            let base = plan.names[i].rsplit('/').next().unwrap_or_default();
            let derive_as = pdbs.contains(&i).then_some(base);
            let blob = archive::extract(zip, i, plan.sizes[i], derive_as, &self.store, &note)?;
            bytes_done += blob.size;
            blobs.insert(i, blob);
            progress(Progress {
                entries_done: n + 1,
                entries_total: wanted.len(),
                bytes_done,
            });
        }
        // Explicit rows go in batches; the database's primary key finds duplicates.
        let mut duplicates = Vec::new();
        for batch in plan.explicit.chunks(10_000) {
            let rows: Vec<PackageKey> = batch
                .iter()
                .map(|m| {
                    let key = SymbolKey::parse_client_key(&m.key)
                        .expect("checked when the index was read");
                    let b = &blobs[&(m.entry as usize)];
                    PackageKey {
                        key: key.normalized().to_owned(),
                        display: key.to_string(),
                        sha256: b.sha256.clone(),
                        size: b.size,
                        derived: false,
                    }
                })
                .collect();
            duplicates.extend(self.store.add_package_keys(seq, &rows).map_err(store_err)?);
        }
        if !duplicates.is_empty() {
            let count = duplicates.len();
            duplicates.truncate(20);
            return Err(PackageError::Duplicates {
                count,
                shown: duplicates.join(", "),
            });
        }
        // Derived keys never override an explicit mapping of the same package.
        let row = |key: &SymbolKey, b: &archive::Blob| PackageKey {
            key: key.normalized().to_owned(),
            display: key.to_string(),
            sha256: b.sha256.clone(),
            size: b.size,
            derived: true,
        };
        let mut derived_rows: Vec<PackageKey> = plan
            .pdbs
            .iter()
            .filter_map(|i| Some(row(blobs[i].derived.as_ref()?, &blobs[i])))
            .collect();
        // An ELF binary's SSQP key names it by file name, which debuginfod's
        // `buildid/<id>/executable` lacks: its build-id spelling is derived, as an upload's
        // build-id index gives it.
        derived_rows.extend(plan.explicit.iter().flat_map(|m| {
            let key = SymbolKey::parse_client_key(&m.key).expect("checked when the index was read");
            let b = &blobs[&(m.entry as usize)];
            crate::debuginfod::executable_keys_of(&key)
                .into_iter()
                .map(move |alias| row(&alias, b))
        }));
        let skipped = self
            .store
            .add_package_keys(seq, &derived_rows)
            .map_err(store_err)?;
        let derived = (derived_rows.len() - skipped.len()) as u64;
        let key_count = plan.explicit.len() as u64 + derived;
        if key_count == 0 {
            return Err(PackageError::NoIndex);
        }
        let used: HashMap<&str, u64> = plan
            .explicit
            .iter()
            .map(|m| &blobs[&(m.entry as usize)])
            .chain(
                plan.pdbs
                    .iter()
                    .map(|i| &blobs[i])
                    .filter(|b| b.derived.is_some()),
            )
            .map(|b| (b.sha256.as_str(), b.size))
            .collect();
        let blob_bytes: u64 = used.values().sum();
        let blob_count = used.len() as u64;
        // The rows now protect every blob a key uses; the claims can go, so that activation
        // collects the blobs no key uses (a `.pdb` that was not a portable PDB).
        drop(used);
        drop(blobs);
        let replaced = match self
            .store
            .activate_package(seq, key_count, blob_bytes, may_replace)
            .map_err(store_err)?
        {
            Activation::Refused => return Err(PackageError::ReplaceNeedsAdmin(name.to_owned())),
            Activation::Replaced(old) => Some(old),
            Activation::Added => None,
        };
        if let Some(old) = replaced {
            self.store.drop_package(old).map_err(store_err)?;
        }
        tracing::info!(
            package = name,
            keys = key_count,
            derived,
            blobs = blob_count,
            blob_bytes,
            replaced = replaced.is_some(),
            "package ingested"
        );
        Ok(Ingested {
            name: name.to_owned(),
            keys: key_count,
            derived_keys: derived,
            blobs: blob_count,
            blob_bytes,
            replaced: replaced.is_some(),
        })
    }

    /// Removes a live package; its keys fall back to other packages defining them. Blocking.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        let Some(seq) = self.store.retire_package(name)? else {
            return Ok(false);
        };
        self.store.drop_package(seq)?;
        tracing::info!(package = name, "package removed");
        Ok(true)
    }

    pub fn list(&self) -> anyhow::Result<Vec<PackageInfo>> {
        Ok(self.store.list_packages()?)
    }

    /// A package and a page of its keys.
    pub fn show(
        &self,
        name: &str,
        after: &str,
        limit: usize,
    ) -> anyhow::Result<Option<(PackageInfo, Vec<PackageKey>)>> {
        let Some((seq, info)) = self.store.package(name)? else {
            return Ok(None);
        };
        let keys = self.store.package_keys(seq, after, limit)?;
        Ok(Some((info, keys)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a crash in the middle of an ingest leaves: an invisible package with key rows
    /// and a blob it created. Recovery removes all of it and nothing else.
    #[test]
    fn recovery_undoes_an_ingest_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SymbolStore::open(dir.path()).unwrap());
        let packages = Packages::new(store.clone(), PackageConfig::default());
        let seq = store.begin_package("cut", 10).unwrap();
        let sha = "ab".repeat(32);
        store.note_new_blob(seq, &sha).unwrap();
        let blob = store.blob_path(&sha);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"half an ingest").unwrap();
        let row = PackageKey {
            key: "a/1/a".into(),
            display: "a/1/a".into(),
            sha256: sha.clone(),
            size: 14,
            derived: false,
        };
        store.add_package_keys(seq, &[row]).unwrap();
        assert_eq!(
            store.get("a/1/a").unwrap(),
            None,
            "an ingesting package is invisible"
        );
        packages.recover().unwrap();
        assert!(!blob.exists());
        assert!(store.unfinished_packages().unwrap().is_empty());
        assert!(store.list_packages().unwrap().is_empty());
    }
}
