//! Raw build output in (`PUT /api/files/<name>`, `symhub upload`): the server identifies each
//! file from its bytes and never from a client's claim (`symhub_core::native`), stores it
//! under every key a client asks by, unpacks what holds more files (a `.nupkg`/`.snupkg`'s
//! PDBs and DLLs, a fat Mach-O's architectures, a PE's embedded portable PDB), and makes the
//! Breakpad `.sym` of what has debug info ([`super::symgen`]).
//!
//! Identification reads headers through `object`'s `ReadCache` (never the whole file) on the
//! blocking pool; a file that is none of the formats gets 422 with the reason.

use std::fs::File;
use std::path::Path;

use futures_util::future::BoxFuture;
use serde::Serialize;
use symhub_core::breakpad::{parse_sym_header, SymHeader, HEADER_LIMIT};
use symhub_core::native::{self, DebugObject, Format, Identified};

use super::{blocking, UploadError, Uploads};
use crate::store::symbols::{Committed, ModuleId, Origin, Received};

/// Files a zip may hold before it is refused (a `.nupkg` has tens).
pub(super) const MAX_MEMBERS: usize = 10_000;

/// What happened to one uploaded file, as the API answers it.
#[derive(Debug, Serialize, Default)]
pub struct FileReport {
    pub name: String,
    pub format: Option<&'static str>,
    pub size: u64,
    pub sha256: String,
    /// The modules found and the keys each was stored under.
    pub objects: Vec<ObjectReport>,
    /// Breakpad symbols made from them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breakpad: Vec<SymReport>,
    /// Files inside this one (zip members, an embedded portable PDB).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<FileReport>,
    /// Why a part was left out (a zip member that is no debug file, a `.sym` not made).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ObjectReport {
    pub format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub debug_file: String,
    pub debug_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
    pub keys: Vec<String>,
    /// `stored` or `duplicate` (these bytes were already under every key).
    pub result: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SymReport {
    pub key: String,
    /// `stored`, `duplicate`, `kept` (a `.sym` uploaded as such has the key and wins), or
    /// `failed` (see `error`).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileReport {
    /// Keys stored, this file's and its members'.
    pub fn key_count(&self) -> usize {
        self.objects.iter().map(|o| o.keys.len()).sum::<usize>()
            + self
                .members
                .iter()
                .map(FileReport::key_count)
                .sum::<usize>()
    }
}

pub(super) fn result_name(c: Committed) -> &'static str {
    match c {
        Committed::Stored => "stored",
        Committed::Duplicate => "duplicate",
    }
}

/// What a file is, read from its bytes.
enum Sniffed {
    Native(Identified),
    Breakpad(SymHeader),
    Zip,
}

fn sniff(path: &Path, name: &str) -> Result<Sniffed, UploadError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEADER_LIMIT);
    File::open(path)?
        .take(HEADER_LIMIT as u64)
        .read_to_end(&mut head)?;
    match Format::sniff(&head) {
        Some(Format::Breakpad) => parse_sym_header(&head)
            .map(Sniffed::Breakpad)
            .map_err(|e| UploadError::NotSym(e.to_string())),
        Some(Format::Zip) => Ok(Sniffed::Zip),
        _ => {
            let cache = object::read::ReadCache::new(File::open(path)?);
            native::identify(&cache, name)
                .map(Sniffed::Native)
                .map_err(|e| UploadError::NotDebugFile(e.to_string()))
        }
    }
}

fn module_of(o: &DebugObject) -> ModuleId {
    ModuleId {
        kind: o.format.kind().to_owned(),
        debug_file: o.debug_file.clone(),
        debug_id: o.index_id.clone(),
        code_file: o.code_file.clone(),
        code_id: o.code_id.clone(),
    }
}

/// The base name of an uploaded file, checked: 1 to 255 bytes, no control characters, no
/// leading or trailing space (a key made of it would be unreachable or misleading).
pub fn file_name(name: &str) -> Result<String, UploadError> {
    let name = native::base_name(name);
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.trim() != name
        || name.chars().any(char::is_control);
    if bad {
        return Err(UploadError::BadRequest(format!(
            "`{}` is not a file name (1 to 255 bytes, no control characters, no leading or \
             trailing space)",
            name.chars().take(64).collect::<String>().escape_debug()
        )));
    }
    Ok(name.to_owned())
}

impl Uploads {
    /// Identifies a received file uploaded as `name` and stores everything in it, recording
    /// the keys in `origin`'s transaction when given. Errors when nothing in it could be
    /// stored.
    pub async fn ingest_file(
        &self,
        received: Received,
        name: &str,
        origin: Origin,
    ) -> Result<FileReport, UploadError> {
        let name = file_name(name)?;
        let report = self.ingest(received, name, origin, 0).await?;
        if report.key_count() == 0 {
            let why = report.notes.first().cloned().unwrap_or_default();
            return Err(UploadError::NotDebugFile(format!(
                "nothing in {} is a debug file symhub can key{}{why}",
                report.name,
                if why.is_empty() { "" } else { ": " }
            )));
        }
        Ok(report)
    }

    fn ingest(
        &self,
        received: Received,
        name: String,
        origin: Origin,
        depth: u8,
    ) -> BoxFuture<'_, Result<FileReport, UploadError>> {
        Box::pin(async move {
            let mut report = FileReport {
                name: name.clone(),
                size: received.size,
                sha256: received.sha256.clone(),
                ..FileReport::default()
            };
            let path = received.path.to_path_buf();
            let sniffed = {
                let name = name.clone();
                blocking(move || sniff(&path, &name)).await?
            };
            match sniffed {
                Sniffed::Breakpad(header) => {
                    report.format = Some(Format::Breakpad.kind());
                    report
                        .objects
                        .push(self.store_sym(received, header, &origin).await?);
                }
                Sniffed::Zip if depth > 0 => {
                    return Err(UploadError::NotDebugFile(format!(
                        "{name}: a zip inside a zip is not unpacked"
                    )))
                }
                Sniffed::Zip => {
                    report.format = Some(Format::Zip.kind());
                    let members = self.unpack_zip(&received).await?;
                    drop(received);
                    for member in members {
                        match member {
                            Ok((member_name, file)) => match self
                                .ingest(file, member_name.clone(), origin.clone(), depth + 1)
                                .await
                            {
                                Ok(r) if r.key_count() > 0 => report.members.push(r),
                                Ok(_) => {}
                                Err(UploadError::NotDebugFile(_) | UploadError::NotSym(_)) => {}
                                Err(e) => return Err(e),
                            },
                            Err(note) => report.notes.push(note),
                        }
                    }
                }
                Sniffed::Native(found) => {
                    report.format = found.objects.first().map(|o| o.format.kind());
                    self.store_native(received, found, &origin, depth, &mut report)
                        .await?;
                }
            }
            Ok(report)
        })
    }

    async fn store_native(
        &self,
        received: Received,
        found: Identified,
        origin: &Origin,
        depth: u8,
        report: &mut FileReport,
    ) -> Result<(), UploadError> {
        // Parts are copied out before the file itself is committed (which moves it): one
        // file per object, the whole file for the one object without a range.
        let mut parts = Vec::with_capacity(found.objects.len());
        for object in &found.objects {
            parts.push(match object.range {
                Some(range) => Some(self.copy_range(&received, range).await?),
                None => None,
            });
        }
        let mut embedded = Vec::new();
        if depth < 2 {
            for e in &found.embedded {
                match self.inflate_embedded(&received, e).await {
                    Ok(file) => embedded.push((e.name.clone(), file)),
                    Err(note) => report.notes.push(note),
                }
            }
        }
        let mut whole = Some(received);
        for (object, part) in found.objects.iter().zip(parts) {
            let Some(file) = part.or_else(|| whole.take()) else {
                continue;
            };
            let committed = self.commit_object(file, object, origin).await?;
            report.objects.push(ObjectReport {
                format: object.format.kind(),
                arch: object.arch.clone(),
                debug_file: object.debug_file.clone(),
                debug_id: object.debug_id.clone(),
                code_file: object.code_file.clone(),
                code_id: object.code_id.clone(),
                keys: object.keys.iter().map(|k| k.to_string()).collect(),
                result: result_name(committed),
            });
            if let Some(sym) = self.breakpad_for(object, committed, origin).await {
                report.breakpad.push(sym);
            }
        }
        for (name, file) in embedded {
            match self.ingest(file, name, origin.clone(), depth + 1).await {
                Ok(r) => report.members.push(r),
                Err(e) => report.notes.push(format!("embedded portable PDB: {e}")),
            }
        }
        Ok(())
    }

    async fn commit_object(
        &self,
        file: Received,
        object: &DebugObject,
        origin: &Origin,
    ) -> Result<Committed, UploadError> {
        let store = self.store.clone();
        let keys = object.keys.clone();
        let module = module_of(object);
        let origin = origin.clone();
        let committed =
            blocking(move || Ok(store.commit_in(file, &keys, &module, &origin)?)).await?;
        for k in &object.keys {
            tracing::info!(key = %k, format = object.format.kind(), result = result_name(committed), "debug file stored");
        }
        Ok(committed)
    }

    /// A Breakpad `.sym` uploaded as a raw file: keyed by its own MODULE line, as sym_upload
    /// v1/v2 uploads are once their claim is checked.
    async fn store_sym(
        &self,
        received: Received,
        header: SymHeader,
        origin: &Origin,
    ) -> Result<ObjectReport, UploadError> {
        let key = header
            .key()
            .map_err(|e| UploadError::NotSym(e.to_string()))?;
        let module = super::sym_module(&header);
        let store = self.store.clone();
        let keys = vec![key.clone()];
        let origin = origin.clone();
        let committed =
            blocking(move || Ok(store.commit_in(received, &keys, &module, &origin)?)).await?;
        tracing::info!(key = %key, result = result_name(committed), "symbol stored");
        Ok(ObjectReport {
            format: Format::Breakpad.kind(),
            arch: Some(header.arch.clone()),
            debug_file: header.debug_file.clone(),
            debug_id: header.debug_id.clone(),
            code_file: header.code_file.clone(),
            code_id: header.code_id.clone(),
            keys: vec![key.to_string()],
            result: result_name(committed),
        })
    }
}

/// A file a client has, as it asks whether the server holds it (`POST /api/files/missing`).
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    pub sha256: String,
    /// The keys the file is stored under.
    pub keys: Vec<String>,
    /// Keys of files made from it (its Breakpad `.sym`), recorded with a transaction.
    #[serde(default)]
    pub derived: Vec<String>,
}

impl Uploads {
    /// Whether transaction `id` is open for uploads (refused: unknown, deleted).
    pub async fn check_transaction(&self, id: i64) -> Result<(), UploadError> {
        let store = self.store.clone();
        blocking(move || Ok(store.check_transaction(id)?)).await
    }

    /// Indices of `files` the store does not hold under every key with those bytes. Held
    /// ones are recorded in `transaction`, with their derived keys' current bytes.
    pub async fn missing(
        &self,
        files: Vec<Held>,
        transaction: Option<i64>,
    ) -> Result<Vec<usize>, UploadError> {
        let store = self.store.clone();
        blocking(move || {
            let parse = |k: &String| symhub_core::SymbolKey::parse_path(k).ok();
            let mut missing = Vec::new();
            // Files held, then their derived files: recorded in one database transaction each.
            let mut held_files: Vec<(usize, Vec<symhub_core::SymbolKey>, String, u64)> = Vec::new();
            let mut derived = Vec::new();
            for (i, held) in files.iter().enumerate() {
                let keys: Vec<_> = held.keys.iter().filter_map(parse).collect();
                let mut stored = Vec::new();
                for k in &keys {
                    match store.get_uploaded(k.normalized())? {
                        Some(s) if s.sha256.eq_ignore_ascii_case(&held.sha256) => stored.push(s),
                        _ => break,
                    }
                }
                if keys.is_empty() || keys.len() != held.keys.len() || stored.len() != keys.len() {
                    missing.push(i);
                    continue;
                }
                if transaction.is_some() {
                    held_files.push((i, keys, stored[0].sha256.clone(), stored[0].size));
                    for d in held.derived.iter().filter_map(parse) {
                        if let Some(s) = store.get_uploaded(d.normalized())? {
                            derived.push((vec![d], s.sha256, s.size));
                        }
                    }
                }
            }
            if let Some(id) = transaction {
                let batch: Vec<_> = held_files
                    .iter()
                    .map(|(_, k, sha, size)| (k.as_slice(), sha.as_str(), *size))
                    .collect();
                let recorded = store.record_held_many(id, &batch)?;
                // Changed since it was read (a deletion won): the client sends it again.
                for ((i, ..), ok) in held_files.iter().zip(recorded) {
                    if !ok {
                        missing.push(*i);
                    }
                }
                let batch: Vec<_> = derived
                    .iter()
                    .map(|(k, sha, size)| (k.as_slice(), sha.as_str(), *size))
                    .collect();
                store.record_held_many(id, &batch)?;
                missing.sort_unstable();
            }
            Ok(missing)
        })
        .await
    }
}
