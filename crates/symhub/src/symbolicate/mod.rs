//! Symbolication: function, file and line for an offset in a module, from the module's
//! Breakpad `.sym` found through the resolver (store, packages, cache, upstreams, or made on
//! demand from its debug file: `cache::derive`).
//!
//! Parsed symbol files are shared by every request in a memory cache bounded by their
//! estimated size in memory (`symbolication.memory_cache`); concurrent requests for one
//! module share one fetch and one parse. What uses it: `/symbolicate/v5` ([`v5`]) and minidump
//! stackwalking ([`minidump`], through [`provider`]).

pub mod frames;
pub mod minidump;
pub mod provider;
pub mod v5;
mod v5_typed;

use std::io::{BufReader, Read};
use std::sync::Arc;

use breakpad_symbols::SymbolFile;
use symhub_core::breakpad::{code_sym_name, parse_sym_header, sym_name};
use symhub_core::native::base_name;
use symhub_core::SymbolKey;

use crate::cache::{Cache, NoFile};
use crate::config::SymbolicationConfig;

/// A module's parsed symbols.
pub struct Symbols {
    pub file: SymbolFile,
    /// The binary named by `INFO CODE_ID <id> <file>` (Windows `.sym` files): Eliot reports
    /// `xul.dll`, not `xul.pdb`, as the module of a frame.
    pub code_file: Option<String>,
    /// Bytes of the `.sym`: its weight in the memory cache.
    pub size: u64,
    /// SHA-256 of the `.sym` parsed ([`crate::cache::Entry::sha256`]): a key whose file was
    /// replaced since (an upload) is parsed again.
    sha256: String,
}

/// Why a module has no symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSymbols {
    /// No `.sym` anywhere, and none could be made.
    Missing,
    /// Not known now (an upstream or the bucket failed); asked again next time.
    Unavailable,
    /// The `.sym` exists but is not a Breakpad symbol file of this module.
    Corrupt(String),
}

/// The module a frame is in, as a minidump or a symbolication job names it.
#[derive(Debug, Clone, Default)]
pub struct ModuleRef {
    /// The debug file's name (a full path is cut to its last component).
    pub debug_file: String,
    /// The Breakpad debug id (GUID + age, 33 hex digits, or any other spelling the `.sym`
    /// path uses).
    pub debug_id: String,
    /// The binary and its code id, tried when the debug-id key has nothing (Tecken's
    /// code-id lookup, and an ELF build id longer than a Breakpad id keeps).
    pub code: Option<(String, String)>,
}

impl ModuleRef {
    /// What a `.sym` made on demand may use: the binary, for a PDB's module.
    fn hints(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some((file, id)) = &self.code {
            crate::cache::derive::hint_code(&mut headers, file, id);
        }
        headers
    }

    /// The `.sym` keys to look in, in order.
    fn keys(&self) -> Vec<SymbolKey> {
        let mut keys = Vec::new();
        let debug_file = base_name(&self.debug_file);
        if !debug_file.is_empty() && !self.debug_id.is_empty() {
            keys.extend(
                SymbolKey::from_segments(debug_file, &self.debug_id, sym_name(debug_file)).ok(),
            );
        }
        if let Some((code_file, code_id)) = &self.code {
            let code_file = base_name(code_file);
            let name = code_sym_name(code_file);
            if !code_file.is_empty() && !code_id.is_empty() {
                keys.extend(
                    SymbolKey::from_segments(code_file, code_id.to_ascii_uppercase(), &name).ok(),
                );
            }
        }
        keys
    }
}

pub struct Symbolicator {
    cache: Arc<Cache>,
    /// Parsed files by normalized `.sym` key, weighed in KiB of estimated memory.
    parsed: moka::future::Cache<String, Arc<Symbols>>,
    /// `.sym` files that did not parse (or are another module's), by key, with their SHA-256
    /// and why, for a minute: a broken file is not parsed again for every request that names
    /// it (but other bytes uploaded under its key are).
    unusable: moka::sync::Cache<String, (String, String)>,
    /// Requests worked on at once (`symbolication.max_concurrent_requests`).
    pub permits: tokio::sync::Semaphore,
    pub config: SymbolicationConfig,
}

impl Symbolicator {
    pub fn new(cache: Arc<Cache>, config: &SymbolicationConfig) -> Arc<Self> {
        let parsed = moka::future::Cache::builder()
            .max_capacity((config.memory_cache.as_u64() / 1024).max(1))
            .weigher(|_, s: &Arc<Symbols>| u32::try_from(s.weight_kib()).unwrap_or(u32::MAX))
            .build();
        Arc::new(Self {
            cache,
            parsed,
            unusable: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            permits: tokio::sync::Semaphore::new(crate::config::or_per_core(
                config.max_concurrent_requests,
                2,
            )),
            config: config.clone(),
        })
    }

    /// The symbols of `module`: from the first of its keys that has a `.sym`.
    pub async fn module(&self, module: &ModuleRef) -> Result<Arc<Symbols>, NoSymbols> {
        let mut why = NoSymbols::Missing;
        let hints = module.hints();
        for key in module.keys() {
            match self.by_key_with(&key, &hints).await {
                Ok(s) => return Ok(s),
                Err(NoSymbols::Missing) => {}
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    /// The parsed `.sym` of `key`, one fetch and parse for any number of concurrent callers;
    /// `hints` tell a conversion what else is known of the module.
    ///
    /// What the key answers with is asked first (for a key memory knows, one lookup, no file
    /// opened): a parse of bytes an upload has replaced, or of a key deleted since, is never
    /// used (a `GET` of the key answers with the new bytes at once; so must symbolication).
    async fn by_key_with(
        &self,
        key: &SymbolKey,
        hints: &http::HeaderMap,
    ) -> Result<Arc<Symbols>, NoSymbols> {
        let norm = key.normalized().to_owned();
        let entry = match self.cache.entry_with(key, hints).await {
            Ok(entry) => entry,
            Err(e) => {
                if e == NoFile::Missing {
                    self.parsed.invalidate(&norm).await;
                }
                return Err(no_symbols(e));
            }
        };
        if let Some((_, why)) = self
            .unusable
            .get(&norm)
            .filter(|(sha, _)| *sha == entry.sha256)
        {
            return Err(NoSymbols::Corrupt(why));
        }
        if let Some(parsed) = self.parsed.get(&norm).await {
            if parsed.sha256 == entry.sha256 {
                return Ok(parsed);
            }
            self.parsed.invalidate(&norm).await;
        }
        let found = self
            .parsed
            .try_get_with(norm.clone(), self.load(key, hints))
            .await
            .map_err(|e| (*e).clone());
        if let Err(NoSymbols::Corrupt(why)) = &found {
            self.unusable
                .insert(norm, (entry.sha256.clone(), why.clone()));
        }
        found
    }

    async fn load(
        &self,
        key: &SymbolKey,
        hints: &http::HeaderMap,
    ) -> Result<Arc<Symbols>, NoSymbols> {
        let local = self
            .cache
            .local_file_with(key, hints)
            .await
            .map_err(no_symbols)?;
        let started = std::time::Instant::now();
        let asked = key.clone();
        let parsed = tokio::task::spawn_blocking(move || parse(&local, &asked))
            .await
            .map_err(|e| NoSymbols::Corrupt(format!("the parser failed: {e}")))?;
        match &parsed {
            Ok(s) => tracing::debug!(key = %key, kib = s.weight_kib(),
                took_ms = started.elapsed().as_millis() as u64, "parsed a symbol file"),
            Err(e) => tracing::warn!(key = %key, "cannot use this symbol file: {e:?}"),
        }
        parsed.map(Arc::new)
    }
}

fn no_symbols(e: NoFile) -> NoSymbols {
    match e {
        NoFile::Missing => NoSymbols::Missing,
        NoFile::Unknown => NoSymbols::Unavailable,
    }
}

/// What a parsed file takes in memory per byte of its `.sym`, rounded up: rust-minidump's
/// `SymbolFile` measured at 2.3–2.4× (`bench/symbolicate`: 462 MiB of `.sym`, 1106 MiB of
/// RSS), so `symbolication.memory_cache` bounds memory, not file sizes.
const PARSED_PER_SYM_BYTE: (u64, u64) = (5, 2);

impl Symbols {
    /// The estimated memory of the parsed file, in KiB.
    fn weight_kib(&self) -> u64 {
        let (num, den) = PARSED_PER_SYM_BYTE;
        self.size.saturating_mul(num) / den / 1024 + 1
    }
}

/// Parses a `.sym` (on a blocking thread): its header, then the whole file.
fn parse(local: &crate::cache::LocalFile, key: &SymbolKey) -> Result<Symbols, NoSymbols> {
    let mut head = Vec::new();
    BufReader::new(local.reader())
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| NoSymbols::Corrupt(format!("unreadable: {e}")))?;
    let header = parse_sym_header(&head)
        .map_err(|e| NoSymbols::Corrupt(format!("not a Breakpad symbol file: {e}")))?;
    // A mislabelled file (another module's, under this key) would name every frame wrongly:
    // the key's id must be the file's debug id, or its code id for a code-id key.
    let id = key.id();
    let names_it = |i: Option<&str>| i.is_some_and(|i| i.eq_ignore_ascii_case(id));
    if !names_it(Some(&header.debug_id)) && !names_it(header.code_id.as_deref()) {
        return Err(NoSymbols::Corrupt(format!(
            "the file is of module {}, not {id}",
            header.debug_id
        )));
    }
    let mut file = SymbolFile::parse(BufReader::new(local.reader()), |_| ())
        .map_err(|e| NoSymbols::Corrupt(format!("{e}")))?;
    file.url = Some(format!("/{key}"));
    Ok(Symbols {
        file,
        code_file: header.code_file,
        size: local.entry.size,
        sha256: local.entry.sha256.clone(),
    })
}
