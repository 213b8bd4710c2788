//! The files of one module, across uploads: a PDB and the PE it belongs to, a split `.debug`
//! and its stripped binary, a dSYM and its Mach-O — found by the id the store indexes them
//! by (`symbols.debug_id`, index `symbols_build_id`), and brought to local disk for a tool
//! that reads paths (dump_syms).

use std::io;
use std::path::{Path, PathBuf};

use super::db::{p, DbResult};
use super::objects::Finished;
use super::symbols::SymbolStore;

/// One stored file of a module.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// The key as uploaded (`hello/elf-buildid-…/hello`).
    pub key: String,
    /// `PE`, `PDB`, `ELF`, `MACHO`, `BREAKPAD`…
    pub kind: String,
    pub sha256: String,
    pub size: u64,
    /// The module's debug file (lower-case), and code file when recorded.
    pub debug_file: String,
    pub code_file: Option<String>,
}

/// A stored blob on local disk: the store's own file (read it, never change it), or a copy
/// downloaded from the bucket (deleted when dropped).
pub enum LocalBlob {
    Stored(PathBuf),
    Copy(Finished),
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        match self {
            LocalBlob::Stored(p) => p,
            LocalBlob::Copy(f) => &f.temp,
        }
    }
}

impl SymbolStore {
    /// Uploaded files (not package entries) recorded with module id `debug_id` (lower-case:
    /// a Breakpad debug id, an ELF build id, a Mach-O UUID).
    pub fn module_files(&self, debug_id: &str) -> DbResult<Vec<ModuleFile>> {
        let rows = self.db.query(
            "SELECT display, kind, sha256, size, debug_file, code_file FROM symbols
             WHERE debug_id = ?1 ORDER BY key",
            p![&debug_id.to_ascii_lowercase()],
        )?;
        Ok(rows
            .iter()
            .map(|r| ModuleFile {
                key: r.text(0),
                kind: r.text(1),
                sha256: r.text(2),
                size: r.int(3) as u64,
                debug_file: r.text(4),
                code_file: r.opt_text(5),
            })
            .collect())
    }

    /// The kind recorded with `key`'s uploaded file (`BREAKPAD`, `BREAKPAD_MADE`, `PE`…).
    pub fn kind_of(&self, key: &str) -> DbResult<Option<String>> {
        Ok(self
            .db
            .query_opt("SELECT kind FROM symbols WHERE key = ?1", p![key])?
            .map(|r| r.text(0)))
    }

    /// The directory for this process's temp files inside the data directory (nothing is
    /// ever written outside it).
    pub fn tmp_dir(&self) -> PathBuf {
        self.blobs.dir().tmp_dir()
    }

    /// Blob `sha256` as a local file: the stored file itself, this instance's copy of a
    /// bucket blob, or a fresh download checked against `size`. Blocking.
    pub fn local_blob(&self, sha256: &str, size: u64) -> io::Result<LocalBlob> {
        match self.blobs.bucket() {
            None => Ok(LocalBlob::Stored(self.blobs.dir().path(sha256))),
            Some(bucket) => match bucket.local_copy(sha256) {
                Some(path) => Ok(LocalBlob::Stored(path)),
                None => bucket
                    .download(&bucket.blob_path(sha256), Some(size))
                    .map(LocalBlob::Copy),
            },
        }
    }
}
