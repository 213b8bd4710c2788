//! The files of one module, across uploads: a PDB and the PE it belongs to, a split `.debug`
//! and its stripped binary, a dSYM and its Mach-O — found by the id the store indexes them
//! by (`symbols.debug_id`, index `symbols_build_id`), and brought to local disk for a tool
//! that reads paths (dump_syms); and what a client asks of a module's identity (sym-upload
//! v2's `checkStatus`, Tecken's code-id lookup).

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
    /// Whether the module with this identity needs nothing more uploaded (sym-upload-v2
    /// `checkStatus`, whose `FOUND` makes sym_upload skip its upload). The request does not
    /// say which kind the client would send, and an ELF binary and its debug file (a Mach-O
    /// and its dSYM) share one identity: for those, both must be there (the README's `-t
    /// elf` then `-t debug_only`). A PE (code id) and a PDB (GUID and age) each have their
    /// own, which a Breakpad `.sym` of the PDB shares: any of those is enough. A dwp counts
    /// for nothing: a split-DWARF build's binary and debug file still go after it.
    pub fn has_module(&self, debug_file: &str, debug_id: &str) -> DbResult<bool> {
        let rows = self.db.query(
            "SELECT kind, key FROM symbols WHERE debug_file = ?1 AND debug_id = ?2",
            p![
                &debug_file.to_lowercase(),
                &debug_id.replace('-', "").to_lowercase()
            ],
        )?;
        let (mut debug_info, mut code) = (false, false);
        for r in &rows {
            let (kind, key) = (r.text(0), r.text(1));
            // `_.debug/…` (ELF) and `_.dwarf/…` (Mach-O) keys are debug info; the others
            // of these kinds name a binary.
            let debug_key = key.starts_with("_.debug/") || key.starts_with("_.dwarf/");
            match kind.as_str() {
                "BREAKPAD" | "PE" | "PDB" => return Ok(true),
                "BREAKPAD_MADE" | "DWP" => {}
                "DEBUG_ONLY" | "DSYM" => debug_info = true,
                _ if debug_key => debug_info = true,
                _ => code = true,
            }
        }
        Ok(debug_info && code)
    }

    /// The Breakpad key of a module uploaded with this code file and code id (Tecken's
    /// code-id lookup).
    pub fn by_code_id(&self, code_file: &str, code_id: &str) -> DbResult<Option<String>> {
        Ok(self
            .db
            .read_query_opt(
                "SELECT display FROM symbols
                 WHERE code_id = ?1 AND code_file = ?2 AND kind IN ('BREAKPAD', 'BREAKPAD_MADE')
                 ORDER BY kind LIMIT 1",
                p![&code_id.to_lowercase(), &code_file.to_lowercase()],
            )?
            .map(|r| r.text(0)))
    }

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

#[cfg(test)]
mod tests {
    use symhub_core::SymbolKey;

    use super::*;
    use crate::store::symbols::tests::received;
    use crate::store::symbols::ModuleId;

    /// Commits a file of `kind` under `keys` for the module (`m`, `1`).
    fn upload(store: &SymbolStore, kind: &str, keys: &[&str], bytes: &[u8]) {
        let module = ModuleId {
            kind: kind.into(),
            debug_file: "m".into(),
            debug_id: "1".into(),
            ..ModuleId::default()
        };
        let keys: Vec<_> = keys
            .iter()
            .map(|k| SymbolKey::parse_path(k).unwrap())
            .collect();
        store
            .commit(received(store, bytes), &keys, &module)
            .unwrap();
    }

    #[test]
    fn check_status_is_found_once_nothing_more_of_the_module_is_needed() {
        let found = |kinds: &[(&str, &[&str])]| {
            let dir = tempfile::tempdir().unwrap();
            let store = SymbolStore::open(dir.path()).unwrap();
            for (i, (kind, keys)) in kinds.iter().enumerate() {
                upload(&store, kind, keys, format!("file {i}").as_bytes());
            }
            store.has_module("M", "1").unwrap()
        };
        let binary: &[&str] = &["m/1/m", "m/elf-buildid-1/m"];
        let debug: &[&str] = &["_.debug/elf-buildid-sym-1/_.debug"];
        assert!(!found(&[]));
        // An ELF binary and its debug file share the identity: both are needed.
        assert!(!found(&[("ELF", binary)]));
        assert!(!found(&[("DEBUG_ONLY", debug)]));
        assert!(!found(&[("ELF", debug)]), "a debug file sent as -t elf");
        assert!(found(&[("ELF", binary), ("DEBUG_ONLY", debug)]));
        // A dSYM keeps the binary's plain key: still only debug info.
        assert!(!found(&[(
            "DSYM",
            &["m/1/m", "_.dwarf/mach-uuid-sym-1/_.dwarf"]
        )]));
        assert!(found(&[
            ("MACHO", &["m/1/m2"]),
            ("DSYM", &["_.dwarf/mach-uuid-sym-1/_.dwarf"])
        ]));
        // A PE or a PDB is alone under its identity; a `.sym` answers for its module.
        assert!(found(&[("PE", &["m/1/m"])]));
        assert!(found(&[("PDB", &["m/1/m"])]));
        assert!(found(&[("BREAKPAD", &["m/1/m.sym"])]));
        assert!(!found(&[("BREAKPAD_MADE", &["m/1/m.sym"])]));
        // A dwp is neither: the debug file must still go after it (re-test pass).
        assert!(!found(&[("ELF", binary), ("DWP", &["m.dwp/1/m.dwp"])]));
    }
}
