//! Uploads into the permanent store: Breakpad `sym_upload` in both protocols.
//!
//! - v1: one multipart POST; the `symbol_file` part streams to a temp file.
//! - v2: `checkStatus` → `uploads:create` (a session with an unguessable, single-use,
//!   expiring token carried by the upload URL) → `PUT` of the raw bytes (chunked, no
//!   Content-Length) → `:complete` with the lenient body. Sessions live in the store's
//!   database and its `uploads/` directory, so any instance sharing them can finish one.
//!
//! Every body streams to disk with its size checked against `upload.max_size` as it
//! arrives (never whole in memory) and is hashed on the way. A Breakpad file must name, in
//! its MODULE line, the module the uploader claims; otherwise nothing is stored.

pub mod dump_worker;
pub mod files;
mod symgen;
pub use symgen::meaningful_module_name;
mod unpack;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use symhub_core::breakpad::{native_keys, parse_sym_header, HEADER_LIMIT};
use symhub_core::SymbolKey;

use crate::config::UploadConfig;
use crate::store::sessions::Session;
use crate::store::symbols::{Committed, ModuleId, Origin, Received};
use crate::store::Pipelined;
use crate::store::SymbolStore;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than upload.max_size ({0} bytes)")]
    TooLarge(u64),
    #[error("the server's disk is full; the upload was discarded, retry later")]
    NoSpace,
    #[error("too many upload sessions are open (upload.max_sessions = {0}); retry later")]
    TooManySessions(u64),
    #[error("no open upload session `{0}`: unknown, expired or already completed")]
    UnknownSession(String),
    #[error("this upload URL was already used or is not valid; create a new upload")]
    BadToken,
    #[error("nothing was uploaded for session `{0}`: PUT the file to its uploadUrl first")]
    NothingReceived(String),
    #[error("not a Breakpad symbol file: {0}")]
    NotSym(String),
    #[error("{0}")]
    NotDebugFile(String),
    #[error("the file's MODULE line names `{found_file}` `{found_id}`, not `{file}` `{id}`")]
    Mismatch {
        file: String,
        id: String,
        found_file: String,
        found_id: String,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("the upload body broke off: {0}")]
    Body(String),
    #[error("storage error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::db::DbError> for UploadError {
    fn from(e: crate::store::db::DbError) -> Self {
        UploadError::Internal(e.into())
    }
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                UploadError::NoSpace
            }
            _ => UploadError::Internal(e.into()),
        }
    }
}

/// What an uploader says the file is.
#[derive(Debug, Clone)]
pub struct Claim {
    /// `BREAKPAD` (default), or a native type (`ELF`, `PE`…).
    pub upload_type: String,
    pub debug_file: String,
    pub debug_id: String,
}

pub struct Uploads {
    store: Arc<SymbolStore>,
    config: UploadConfig,
    /// `packages.max_ratio`: bounds what a zip member unpacks to (`unpack`).
    max_ratio: u64,
    pub body_idle_timeout: std::time::Duration,
    /// `.sym` makers that may run at once: each reads its file whole, so as many as there
    /// are cores, not as many as there are uploads.
    symgen_slots: tokio::sync::Semaphore,
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UploadError> + Send + 'static,
) -> Result<T, UploadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UploadError::Internal(e.into()))?
}

impl Uploads {
    /// `[upload]`, `server.body_idle_timeout`, and `packages.max_ratio` (what a zip's member
    /// may unpack to, per compressed byte, as for SSQP packages).
    pub fn new(store: Arc<SymbolStore>, config: &crate::config::Config) -> Self {
        Self {
            store,
            config: config.upload.clone(),
            max_ratio: config.packages.max_ratio,
            body_idle_timeout: config.server.body_idle_timeout,
            symgen_slots: tokio::sync::Semaphore::new(crate::config::or_per_core(0, 1)),
        }
    }

    pub fn store(&self) -> &Arc<SymbolStore> {
        &self.store
    }

    pub fn max_size(&self) -> u64 {
        self.config.max_size.as_u64()
    }

    /// Streams a body to a temp file in the store, hashing it and enforcing the size limit.
    pub async fn receive<S, E>(
        &self,
        body: S,
        declared: Option<u64>,
    ) -> Result<Received, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        receive(
            &self.store,
            body,
            declared,
            self.max_size(),
            self.body_idle_timeout,
        )
        .await
    }

    /// Stored symbols whose key starts with `prefix` (case-insensitive), in key order, after
    /// `after`, at most `limit`.
    pub async fn list(
        &self,
        prefix: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<crate::store::StoredSymbol>, UploadError> {
        let store = self.store.clone();
        blocking(move || Ok(store.list(&prefix, &after, limit)?)).await
    }

    /// Validates a received file against its claim and commits it under its keys.
    pub async fn finish(&self, received: Received, claim: Claim) -> Result<Committed, UploadError> {
        self.finish_in(received, claim, Origin::default()).await
    }

    /// [`Self::finish`], recording the uploader and the keys in `origin`'s upload
    /// transaction when given (`crate::store::transactions`).
    pub async fn finish_in(
        &self,
        received: Received,
        claim: Claim,
        origin: Origin,
    ) -> Result<Committed, UploadError> {
        let store = self.store.clone();
        let (committed, keys) = blocking(move || {
            let (keys, module) = identify(&received, &claim)?;
            let committed = store.commit_in(received, &keys, &module, &origin)?;
            Ok((committed, keys))
        })
        .await?;
        for k in &keys {
            tracing::info!(key = %k, result = ?committed, "symbol stored");
        }
        Ok(committed)
    }

    /// Stores a source file of the ELF module with build id `build_id`, under the key its
    /// debuginfod request resolves to (`crate::debuginfod::source`). Unlike a symbol file,
    /// a source file may really be empty, so an empty body is kept.
    pub async fn store_source(
        &self,
        received: Received,
        key: SymbolKey,
        build_id: &str,
        path: &str,
        origin: Origin,
    ) -> Result<Committed, UploadError> {
        let store = self.store.clone();
        let module = ModuleId {
            kind: "SOURCE".into(),
            debug_file: path.to_owned(),
            debug_id: build_id.to_owned(),
            code_file: None,
            code_id: None,
        };
        let keys = vec![key];
        let committed =
            blocking(move || Ok(store.commit_in(received, &keys, &module, &origin)?)).await?;
        tracing::info!(build_id, path, result = ?committed, "source stored");
        Ok(committed)
    }

    pub async fn check_status(
        &self,
        debug_file: &str,
        debug_id: &str,
    ) -> Result<bool, UploadError> {
        let (store, f, i) = (
            self.store.clone(),
            debug_file.to_owned(),
            debug_id.to_owned(),
        );
        blocking(move || Ok(store.has_module(&f, &i)?)).await
    }

    /// Opens a v2 session: returns (upload key, token).
    pub async fn create_session(&self) -> Result<(String, String), UploadError> {
        let store = self.store.clone();
        let (max, ttl) = (self.config.max_sessions, self.config.session_ttl);
        blocking(move || {
            if store.count_sessions()? >= max {
                return Err(UploadError::TooManySessions(max));
            }
            let upload_key = hex::encode(rand::random::<[u8; 16]>());
            let token = hex::encode(rand::random::<[u8; 16]>());
            store.create_session(&Session {
                upload_key: upload_key.clone(),
                token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
                expires: SystemTime::now() + ttl,
                received: None,
            })?;
            Ok((upload_key, token))
        })
        .await
    }

    async fn live_session(&self, upload_key: &str) -> Result<Session, UploadError> {
        let (store, key) = (self.store.clone(), upload_key.to_owned());
        blocking(move || store.session(&key)?.ok_or(UploadError::UnknownSession(key))).await
    }

    /// The v2 PUT: checks the single-use token, stores the body beside its session.
    pub async fn put<S, E>(
        &self,
        upload_key: &str,
        token: &str,
        body: S,
        declared: Option<u64>,
    ) -> Result<(), UploadError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        use subtle::ConstantTimeEq;
        let session = self
            .live_session(upload_key)
            .await
            .map_err(|_| UploadError::BadToken)?;
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        if !bool::from(presented.as_bytes().ct_eq(session.token_sha256.as_bytes()))
            || session.received.is_some()
        {
            return Err(UploadError::BadToken);
        }
        let received = self.receive(body, declared).await?;
        let (store, key) = (self.store.clone(), upload_key.to_owned());
        blocking(move || {
            if !store.save_received(&key, received)? {
                // Two PUTs raced for one token: the first one won.
                return Err(UploadError::BadToken);
            }
            Ok(())
        })
        .await
    }

    /// The v2 `:complete`: validates and commits the session's file, then ends the session
    /// whatever the outcome (its token was single-use anyway).
    pub async fn complete(&self, upload_key: &str, claim: Claim) -> Result<Committed, UploadError> {
        self.complete_in(upload_key, claim, Origin::default()).await
    }

    /// [`Self::complete`] with `origin` (uploader, transaction).
    pub async fn complete_in(
        &self,
        upload_key: &str,
        claim: Claim,
        origin: Origin,
    ) -> Result<Committed, UploadError> {
        let session = self.live_session(upload_key).await?;
        let Some((size, sha256)) = session.received else {
            return Err(UploadError::NothingReceived(upload_key.to_owned()));
        };
        let (store, key) = (self.store.clone(), upload_key.to_owned());
        let received = blocking(move || Ok(store.take_received(&key, size, &sha256)?)).await?;
        let result = self.finish_in(received, claim, origin).await;
        let (store, key) = (self.store.clone(), upload_key.to_owned());
        blocking(move || Ok(store.end_session(&key)?)).await?;
        result
    }

    /// Removes expired sessions and their files; run periodically.
    pub async fn expire(&self) {
        let store = self.store.clone();
        match blocking(move || Ok(store.expire_sessions()?)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired unfinished upload sessions"),
            Err(e) => tracing::error!("cannot expire upload sessions: {e}"),
        }
    }
}

/// Streams a body into a temp file of the store: hashed on the way, and cut off (the partial
/// file deleted) as soon as it passes `max` bytes, so an oversize body never fills the disk.
pub async fn receive<S, E>(
    store: &SymbolStore,
    body: S,
    declared: Option<u64>,
    max: u64,
    idle: std::time::Duration,
) -> Result<Received, UploadError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    if declared.is_some_and(|n| n > max) {
        return Err(UploadError::TooLarge(max));
    }
    // Whatever has arrived is written in one hand-off to the blocking pool, and the next
    // batch is read from the network while the previous one is written ([`Pipelined`]). A
    // body that stops arriving is cut (and its partial file deleted) after `idle`, so a
    // stalled client cannot hold a temp file.
    let mut body = std::pin::pin!(body.ready_chunks(64));
    let mut out = Pipelined::new(store.writer()?);
    let mut size = 0u64;
    loop {
        let batch = match tokio::time::timeout(idle, body.next()).await {
            Err(_) => return Err(UploadError::Body(format!("no data for {idle:?}"))),
            Ok(None) => break,
            Ok(Some(batch)) => batch,
        };
        let mut chunks = Vec::with_capacity(batch.len());
        for chunk in batch {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > max {
                // The temp file is dropped with its writer, and the partial file with it.
                return Err(UploadError::TooLarge(max));
            }
            chunks.push(chunk);
        }
        out.write(chunks).await?;
    }
    let out = out.finish().await?;
    let done = out.finish()?;
    Ok(Received {
        path: done.temp,
        size: done.size,
        sha256: done.sha256,
    })
}

/// What a native file's own headers say it holds ([`claimed_by_content`]).
#[derive(Clone, Copy)]
struct Content {
    /// DWARF, a PDB's streams: what a Breakpad `.sym` is made from.
    has_debug_info: bool,
    /// Runnable code: for an ELF file, whether it is a binary at all, not a split debug
    /// file (`objcopy --only-keep-debug` leaves `.text` without bytes).
    runnable: bool,
}

/// Corrects the keys a client's claim gives an ELF file by what the file is, so that a
/// stripped binary and its split debug file, uploaded in either order and under either
/// type, never replace each other: `_.debug/elf-buildid-sym-<id>/_.debug` (debuginfod's
/// `debuginfo`) only for a file that carries DWARF, `<file>/<id>/<file>` (the binary,
/// debuginfod's `executable`) only for one with runnable code, and a `DEBUG_ONLY` upload
/// under the debug key alone. A split debug file sent as `-t elf` (the README's own
/// example once did) would otherwise have replaced the binary for gdb and perf. A file that
/// is not ELF keeps the claimed keys. A dSYM, whose claim names the binary too (`-c app`),
/// goes only under `_.dwarf/mach-uuid-sym-<uuid>/_.dwarf` when the id is a UUID, never under
/// the binary's `<file>/<id>/<file>` (re-test pass: a dSYM replaced the Mach-O there).
/// `content`: what the file's headers say ([`claimed_by_content`]).
fn keys_by_content(kind: &str, content: Option<Content>, keys: &mut Vec<SymbolKey>) {
    let is_debug_key = |k: &SymbolKey| {
        k.is_triple() && k.id().to_ascii_lowercase().starts_with("elf-buildid-sym-")
    };
    let is_dwarf_key = |k: &SymbolKey| k.is_triple() && k.file().eq_ignore_ascii_case("_.dwarf");
    match (kind, content) {
        ("DSYM", _) if keys.iter().any(is_dwarf_key) => keys.retain(is_dwarf_key),
        ("ELF", Some(c)) => keys.retain(|k| {
            if is_debug_key(k) {
                c.has_debug_info
            } else {
                c.runnable
            }
        }),
        ("DEBUG_ONLY", _) if keys.iter().any(is_debug_key) => keys.retain(is_debug_key),
        _ => {}
    }
}

/// Checks that a native file uploaded with a `sym_upload -t` claim is what it claims: a file
/// of that format whose own headers give the claimed id (its build id, code id, debug id or
/// UUID). The claim alone would put any bytes, a text file, under an ELF's build id for
/// debuggers. A `DWP` has no id of its own to check. What the file holds (`None` for a
/// DWP). Blocking (reads the file's headers).
fn claimed_by_content(
    path: &std::path::Path,
    claim: &Claim,
    kind: &str,
) -> Result<Option<Content>, UploadError> {
    use symhub_core::native::Format;
    let formats: &[Format] = match kind {
        "ELF" | "DEBUG_ONLY" => &[Format::Elf],
        "PE" => &[Format::Pe],
        "PDB" => &[Format::Pdb, Format::PortablePdb],
        "MACHO" | "DSYM" => &[Format::MachO],
        _ => return Ok(None),
    };
    let cache = object::read::ReadCache::new(std::fs::File::open(path)?);
    let found = symhub_core::native::identify(&cache, &claim.debug_file).map_err(|e| {
        UploadError::NotDebugFile(format!("not the {kind} file it is uploaded as: {e}"))
    })?;
    let id = &claim.debug_id;
    let names_it = |o: &symhub_core::native::DebugObject| {
        let ids = [Some(&o.debug_id), Some(&o.index_id), o.code_id.as_ref()];
        // A debug-only file (or a dSYM) is its debug information.
        let debug_only = matches!(kind, "DEBUG_ONLY" | "DSYM");
        formats.contains(&o.format)
            && (o.has_debug_info || !debug_only)
            && (ids
                .into_iter()
                .flatten()
                .any(|i| i.eq_ignore_ascii_case(id))
                || o.keys.iter().any(|k| k.id().eq_ignore_ascii_case(id)))
    };
    if let Some(o) = found.objects.iter().find(|o| names_it(o)) {
        // A split ELF debug file and a dSYM's DWARF file are keyed as debug files only
        // (`_.debug/…`, `_.dwarf/…`): no runnable code.
        return Ok(Some(Content {
            has_debug_info: o.has_debug_info,
            runnable: o.keys.iter().any(|k| !k.file().starts_with("_.")),
        }));
    }
    let what: Vec<String> = found
        .objects
        .iter()
        .map(|o| {
            let id = o.code_id.as_ref().unwrap_or(&o.debug_id);
            let debug = if o.has_debug_info {
                ""
            } else {
                " without debug info"
            };
            format!("{} {id}{debug}", o.format.kind())
        })
        .collect();
    Err(UploadError::NotDebugFile(format!(
        "its headers say it is {}, not the {kind} {} it is uploaded as",
        what.join(", "),
        claim.debug_id
    )))
}

/// The keys and module identity of a received file. Blocking (reads the file's head).
fn identify(received: &Received, claim: &Claim) -> Result<(Vec<SymbolKey>, ModuleId), UploadError> {
    let kind = claim.upload_type.to_ascii_uppercase();
    if kind != "BREAKPAD" {
        // A UUID or GUID may come with its dashes; keys spell ids without.
        let claim = &Claim {
            debug_id: claim.debug_id.replace('-', ""),
            ..claim.clone()
        };
        let keys_of = |kind: &str| {
            native_keys(kind, &claim.debug_file, &claim.debug_id)
                .map_err(|e| UploadError::BadRequest(e.to_string()))
        };
        let mut keys = keys_of(&kind)?;
        let content = claimed_by_content(&received.path, claim, &kind)?;
        // A dSYM's DWARF file sent as `-t macho` is keyed as the dSYM it is, never under the
        // binary's key.
        let keyed_as = match content {
            Some(c) if kind == "MACHO" && !c.runnable => "DSYM",
            _ => kind.as_str(),
        };
        if keyed_as != kind {
            keys = keys_of(keyed_as)?;
        }
        keys_by_content(keyed_as, content, &mut keys);
        // A debug file's id must spell its debug key: the claim's `<file>/<id>/<file>` is
        // the binary's (re-test pass: a Breakpad-style `-i` put a dSYM or a debug file there).
        let debug_file =
            matches!(kind.as_str(), "DEBUG_ONLY" | "DSYM") || content.is_some_and(|c| !c.runnable);
        if debug_file && !keys.iter().any(|k| k.file().starts_with("_.")) {
            let wanted = if kind == "DEBUG_ONLY" || kind == "ELF" {
                "the ELF build id as `eu-readelf -n` prints it"
            } else {
                "the Mach-O UUID (32 hex digits, dashes allowed)"
            };
            return Err(UploadError::BadRequest(format!(
                "`{}` is not {wanted}: a debug file is kept under that id only, never under \
                 the binary's `{}/{}/{}`",
                claim.debug_id, claim.debug_file, claim.debug_id, claim.debug_file
            )));
        }
        let module = ModuleId {
            kind,
            debug_file: claim.debug_file.clone(),
            debug_id: claim.debug_id.clone(),
            code_file: None,
            code_id: None,
        };
        return Ok((keys, module));
    }
    let mut head = Vec::with_capacity(HEADER_LIMIT);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(&received.path)?, HEADER_LIMIT as u64),
        &mut head,
    )?;
    let header = parse_sym_header(&head).map_err(|e| UploadError::NotSym(e.to_string()))?;
    if !header.matches(&claim.debug_file, &claim.debug_id) {
        return Err(UploadError::Mismatch {
            file: claim.debug_file.clone(),
            id: claim.debug_id.clone(),
            found_file: header.debug_file,
            found_id: header.debug_id,
        });
    }
    let key = header
        .key()
        .map_err(|e| UploadError::NotSym(e.to_string()))?;
    Ok((vec![key], sym_module(&header)))
}

/// The module identity a Breakpad file's header gives, as recorded with its key (for
/// `checkStatus` and code-id lookups).
fn sym_module(header: &symhub_core::breakpad::SymHeader) -> ModuleId {
    ModuleId {
        kind: "BREAKPAD".into(),
        code_file: header
            .code_file
            .clone()
            .or(header.code_id.as_ref().map(|_| header.debug_file.clone())),
        code_id: header.code_id.clone(),
        debug_file: header.debug_file.clone(),
        debug_id: header.debug_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsym_or_dwp_never_keeps_the_binarys_key() {
        let keys_of = |kind: &str, id: &str| {
            let mut keys = native_keys(kind, "mapp", id).unwrap();
            keys_by_content(kind, None, &mut keys);
            keys.iter().map(|k| k.to_string()).collect::<Vec<_>>()
        };
        let uuid = "4C4C449255553144A1201A681FEC2086";
        let dwarf = format!("_.dwarf/mach-uuid-sym-{}/_.dwarf", uuid.to_lowercase());
        assert_eq!(keys_of("DSYM", uuid), [dwarf]);
        assert_eq!(keys_of("DWP", "c0ffee01"), ["mapp.dwp/c0ffee01/mapp.dwp"]);
        let binary = format!("mapp/{uuid}/mapp");
        assert!(keys_of("MACHO", uuid).contains(&binary));
    }
}
