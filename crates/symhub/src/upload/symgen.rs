//! Breakpad symbols for free: when a file with debug info (a PDB, an ELF with DWARF, a Mach-O
//! with DWARF) or the binary it belongs to is uploaded, the module's `.sym` is made from
//! both as far as they are stored (dump_syms merges them: the PDB or DWARF gives functions
//! and lines, the binary its unwind tables and code id) and stored under its Breakpad key,
//! so minidump processors symbolicate the build with nothing run on the build machine but
//! the upload. Made at upload time, not on first request: a crash pipeline then never waits
//! for it, and the upload's answer says whether it worked. Uploading the second file of a
//! pair makes the `.sym` again, now complete, whichever came first.
//!
//! A `.sym` uploaded as such (kind `BREAKPAD`) is the uploader's choice and is never
//! replaced by one made here (kind `BREAKPAD_MADE`); uploading a `.sym` replaces a made one.

use std::path::{Path, PathBuf};

use symhub_core::breakpad::{parse_sym_header, HEADER_LIMIT};
use symhub_core::native::{DebugObject, Format};

use super::dump_worker::{dump, DumpLimits};
use super::files::{result_name, SymReport};
use super::{blocking, UploadError, Uploads};
use crate::store::modules::{LocalBlob, ModuleFile};
use crate::store::symbols::{Committed, Origin};
use crate::store::SymbolStore;

/// A stored file that carries what a `.sym` is made from.
fn is_debug_info(f: &ModuleFile) -> bool {
    let first = f.key.split('/').next().unwrap_or("");
    match f.kind.as_str() {
        "PDB" => true,
        "ELF" => first.eq_ignore_ascii_case("_.debug"),
        "MACHO" => first.eq_ignore_ascii_case("_.dwarf"),
        _ => false,
    }
}

/// A stored binary of the module (where unwind tables and the code id come from).
fn is_code(f: &ModuleFile) -> bool {
    let first = f.key.split('/').next().unwrap_or("");
    match f.kind.as_str() {
        "PE" => true,
        "ELF" => !first.eq_ignore_ascii_case("_.debug"),
        "MACHO" => !first.eq_ignore_ascii_case("_.dwarf"),
        _ => false,
    }
}

fn file_name(f: &ModuleFile) -> &str {
    f.key.split('/').next().unwrap_or("")
}

/// The inputs of one `.sym`, linked into a private directory under the store's `tmp/`, named
/// as dump_syms needs: a PE beside its PDB with the PDB's stem (how dump_syms finds it), an
/// ELF or Mach-O pair under the module's name in two directories.
struct Inputs {
    _dir: tempfile::TempDir,
    _copies: Vec<LocalBlob>,
    files: Vec<PathBuf>,
    out: PathBuf,
    /// The blobs used, to tell whether the module's files changed meanwhile.
    used: Vec<String>,
    /// The inputs' keys (normalized) and bytes: transactions that hold them hold the `.sym`.
    sources: Vec<(String, String)>,
    /// The binary's own name, when dump_syms is shown it under the PDB's stem.
    code_name: Option<String>,
}

/// The debug file and the binary a `.sym` is made from (the binary only when it is another
/// file: an unstripped binary is both).
fn pick(files: &[ModuleFile]) -> Option<(&ModuleFile, Option<&ModuleFile>)> {
    let debug = files.iter().find(|f| is_debug_info(f))?;
    let code = files
        .iter()
        .find(|f| is_code(f))
        .filter(|c| c.sha256 != debug.sha256);
    Some((debug, code))
}

fn used(debug: &ModuleFile, code: Option<&ModuleFile>) -> Vec<String> {
    std::iter::once(debug)
        .chain(code)
        .map(|f| f.sha256.clone())
        .collect()
}

/// Whether a name can be a module's: not a build id (`.build-id/ab/cdef….debug` in
/// distributions' debug packages, which names files by id only).
pub fn meaningful_module_name(name: &str) -> bool {
    let stem = name.strip_suffix(".debug").unwrap_or(name);
    !(stem.len() >= 16 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the module's `.sym` would be made from now.
fn current(store: &SymbolStore, object: &DebugObject) -> Result<Vec<String>, UploadError> {
    let files = store.module_files(&object.index_id)?;
    Ok(pick(&files).map_or_else(Vec::new, |(d, c)| used(d, c)))
}

fn place(
    store: &SymbolStore,
    f: &ModuleFile,
    to: &Path,
    copies: &mut Vec<LocalBlob>,
) -> std::io::Result<()> {
    let blob = store.local_blob(&f.sha256, f.size)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Same file system (the store's objects and tmp/): a link, not a copy.
    if std::fs::hard_link(blob.path(), to).is_err() {
        std::fs::copy(blob.path(), to)?;
    }
    copies.push(blob);
    Ok(())
}

fn gather(store: &SymbolStore, object: &DebugObject) -> Result<Option<Inputs>, UploadError> {
    let files = store.module_files(&object.index_id)?;
    let Some((debug, code)) = pick(&files) else {
        return Ok(None);
    };
    if code.is_none() && !meaningful_module_name(&object.debug_file) {
        // `.build-id/ab/cdef….debug`: a `.sym` under that name is never asked for; the
        // binary, when it comes, names the module.
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix("symgen")
        .tempdir_in(store.tmp_dir())?;
    let mut copies = Vec::new();
    let mut inputs = Vec::new();
    let mut code_name = None;
    if object.format == Format::Pe || debug.kind == "PDB" {
        let pdb = dir.path().join(file_name(debug));
        place(store, debug, &pdb, &mut copies)?;
        inputs.push(pdb.clone());
        if let Some(code) = code {
            let ext = Path::new(file_name(code))
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("exe")
                .to_ascii_lowercase();
            let ext = if ext == "dll" { "dll" } else { "exe" };
            let shown = pdb.with_extension(ext);
            place(store, code, &shown, &mut copies)?;
            // dump_syms finds a PDB's image only under the PDB's stem (`my_app.pdb` beside
            // `my_app.exe`); cargo names them `my-app.exe` and `my_app.pdb`.
            if shown.file_name().and_then(|n| n.to_str()) != Some(file_name(code)) {
                code_name = Some(file_name(code).to_owned());
            }
        }
    } else {
        // Breakpad names the module after the binary: its upload's name when there is one.
        let module = code.map_or(object.debug_file.as_str(), file_name);
        let at = dir.path().join("debug").join(module);
        place(store, debug, &at, &mut copies)?;
        inputs.push(at);
        if let Some(code) = code {
            let at = dir.path().join("code").join(module);
            place(store, code, &at, &mut copies)?;
            inputs.push(at);
        }
    }
    Ok(Some(Inputs {
        used: used(debug, code),
        sources: std::iter::once(debug)
            .chain(code)
            .map(|f| (symhub_core::key::fold_case(&f.key), f.sha256.clone()))
            .collect(),
        code_name,
        out: dir.path().join("out.sym"),
        _dir: dir,
        _copies: copies,
        files: inputs,
    }))
}

impl Uploads {
    fn dump_limits(&self) -> DumpLimits {
        DumpLimits {
            max_memory: self.config.breakpad_max_memory.as_u64(),
            timeout: self.config.breakpad_timeout,
            settings: ("upload.breakpad_timeout", "upload.breakpad_max_memory"),
        }
    }

    /// Makes and stores the `.sym` of `object`'s module, if the store holds its debug info.
    /// `None` when there is nothing to make (a binary whose debug file was not uploaded, a
    /// portable PDB) or it is already there for bytes seen before.
    pub(super) async fn breakpad_for(
        &self,
        object: &DebugObject,
        committed: Committed,
        origin: &Origin,
    ) -> Option<SymReport> {
        if !self.config.breakpad {
            return None;
        }
        let key = object.breakpad_key.clone()?;
        let store = self.store.clone();
        if committed == Committed::Duplicate {
            let (k, transaction) = (key.clone(), origin.transaction);
            let have = blocking(move || {
                let Some(sym) = store.get(k.normalized())? else {
                    return Ok(false);
                };
                // A run that sends the same files again (`--force`) ships the `.sym` an
                // earlier run made: deleting that earlier run must not take it from this one.
                if let Some(id) = transaction {
                    store.record_held(id, std::slice::from_ref(&k), &sym.sha256, sym.size)?;
                }
                Ok(true)
            })
            .await;
            if have.unwrap_or(false) {
                return None;
            }
        }
        let started = std::time::Instant::now();
        let result = self.make_sym(object, origin).await;
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(None) => None,
            Ok(Some((key, committed))) => {
                // None: a `.sym` uploaded as such has this key, and is kept.
                let result = committed.map_or("kept", result_name);
                tracing::info!(key = %key, result, took_ms = ms, "breakpad symbols made");
                Some(SymReport {
                    key,
                    result,
                    error: None,
                })
            }
            Err(e) => {
                tracing::warn!(key = %key, took_ms = ms, "breakpad symbols not made: {e}");
                Some(SymReport {
                    key: key.to_string(),
                    result: "failed",
                    error: Some(e),
                })
            }
        }
    }

    /// Makes the `.sym` from the module's files as stored now, and again if they changed
    /// while it was made (the other file of the pair arrived, here or at another instance),
    /// so the last `.sym` stored is made from everything.
    async fn make_sym(
        &self,
        object: &DebugObject,
        origin: &Origin,
    ) -> Result<Option<(String, Option<Committed>)>, String> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let store = self.store.clone();
            let o = object.clone();
            let inputs = blocking(move || gather(&store, &o))
                .await
                .map_err(|e| format!("cannot read the module's files: {e}"))?;
            let Some(inputs) = inputs else {
                return Ok(None);
            };
            {
                let _slot = self
                    .symgen_slots
                    .acquire()
                    .await
                    .map_err(|e| e.to_string())?;
                dump(&inputs.files, &inputs.out, self.dump_limits()).await?;
            }
            let store = self.store.clone();
            let o = object.clone();
            let (out, used) = (inputs.out.clone(), inputs.used.clone());
            let (sources, code_name) = (inputs.sources.clone(), inputs.code_name.clone());
            let last = attempt == ATTEMPTS;
            let origin = origin.clone();
            let stored = blocking(move || {
                if !last && current(&store, &o)? != used {
                    return Ok(None);
                }
                if let Some(name) = &code_name {
                    super::dump_worker::name_code_file(&out, name)?;
                }
                let made = commit_sym(&store, &out, &o.debug_id, &origin)?;
                share_with_transactions(&store, &made, &sources, origin.transaction)?;
                Ok(Some((made.0, made.1)))
            })
            .await
            .map_err(|e| e.to_string())?;
            if let Some(stored) = stored {
                return Ok(Some(stored));
            }
        }
        unreachable!("the last attempt commits")
    }
}

/// A made `.sym` belongs to every live transaction that holds a file it was made from, so
/// deleting the run that happened to make it last leaves the others' symbols in place.
fn share_with_transactions(
    store: &SymbolStore,
    (key, committed): &(String, Option<Committed>),
    sources: &[(String, String)],
    transaction: Option<i64>,
) -> Result<(), UploadError> {
    if committed.is_none() {
        return Ok(());
    }
    let Ok(sym) = symhub_core::SymbolKey::parse_path(key) else {
        return Ok(());
    };
    let Some(stored) = store.get(sym.normalized())? else {
        return Ok(());
    };
    let mut ids = std::collections::BTreeSet::new();
    for (k, sha) in sources {
        ids.extend(store.transactions_holding(k, sha)?);
    }
    for id in ids.into_iter().filter(|&id| Some(id) != transaction) {
        // One deleted meanwhile no longer takes keys; the others still do.
        if let Err(e) =
            store.record_held(id, std::slice::from_ref(&sym), &stored.sha256, stored.size)
        {
            tracing::debug!(transaction = id, key = %sym, "made .sym not recorded: {e:#}");
        }
    }
    Ok(())
}

/// Stores a made `.sym` under the key its MODULE line gives, after checking it is the
/// module's. `None` instead of a commit when a `.sym` uploaded as such holds the key.
fn commit_sym(
    store: &SymbolStore,
    out: &Path,
    expected: &str,
    origin: &Origin,
) -> Result<(String, Option<Committed>), UploadError> {
    let received = super::unpack::copy_bounded(store, &mut std::fs::File::open(out)?, u64::MAX)?;
    let mut head = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(&received.path)?, HEADER_LIMIT as u64),
        &mut head,
    )?;
    let header = parse_sym_header(&head).map_err(|e| UploadError::NotSym(e.to_string()))?;
    if !header.debug_id.eq_ignore_ascii_case(expected) {
        return Err(UploadError::NotSym(format!(
            "dump_syms wrote module id {}, the file's is {expected}",
            header.debug_id
        )));
    }
    let key = header
        .key()
        .map_err(|e| UploadError::NotSym(e.to_string()))?;
    if store.kind_of(key.normalized())?.as_deref() == Some("BREAKPAD") {
        return Ok((key.to_string(), None));
    }
    let mut module = super::sym_module(&header);
    module.kind = "BREAKPAD_MADE".into();
    let committed = store.commit_in(received, std::slice::from_ref(&key), &module, origin)?;
    Ok((key.to_string(), Some(committed)))
}
