//! Breakpad `.sym` files made on demand: when no store, package, cache entry or upstream has
//! `<file>/<id>/<name>.sym`, the fill of that key finds the debug file it can be made from
//! (through [`Cache::local_file`], so the store, the cache and upstreams such as Microsoft's
//! all count), converts it with dump_syms in a bounded child process
//! (`upload::dump_worker`), and commits the result as a cache entry of that key. It is a fill
//! like a download, so concurrent requests share one conversion and a failure is a negative
//! entry (the reason goes to the log).
//!
//! A derived entry records the converter that made it ([`derived_tag`]) as its upstream; an
//! entry made by another converter version is ignored by lookups and made again. So is a
//! PDB's `.sym` made without its binary (nothing named it, none was uploaded) once a request
//! names the binary ([`CODE_FILE_HINT`]): its CFI and `INFO CODE_ID` are worth a conversion.
//!
//! Which debug file a `.sym` key comes from (Breakpad's naming, Tecken's code-id form):
//! - `foo.pdb/<GUID+age>/foo.sym` → the PDB `foo.pdb/<GUID+age>/foo.pdb` (or its `.pd_`);
//! - `<name>/<breakpad id>/<name>.sym` → the ELF debug file whose build id begins with the
//!   id's 16 bytes (exact for 16- and 8-byte build ids; a 20-byte one cannot be spelled from
//!   a Breakpad id), then the Mach-O dSYM of that UUID;
//! - `<name>/<build id>/<name>.sym` (Tecken's code-id form, any length but a Breakpad id's
//!   33 digits) → the ELF debug file and the binary of that build id, merged.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use symhub_core::debuginfod::ssqp::{debuginfo_key, executable_key};
use symhub_core::{BuildId, SymbolKey};

use super::drive::Outcome;
use super::fetch::Ended;
use super::fill::{Fill, FillState, Progress};
use super::local::{place, LocalFile, NoFile};
use super::Cache;
use crate::config::Config;
use crate::upload::dump_worker::{dump, name_code_file, DumpLimits};

/// The converter and the revision of how symhub drives it. Changing either makes every
/// derived `.sym` again (old ones are evicted as they go cold). Kept equal to the dump_syms
/// version in Cargo.lock by a test.
pub const CONVERTER: &str = "dump_syms-2.3.9+symhub.2";

/// Every derived entry's `upstream`; `without_binary` for a `.sym` made from a debug file
/// alone (a PDB: no binary was named, or the one named is nowhere or another module's; an
/// ELF debug file: its build id's binary is nowhere yet).
pub fn derived_tag(without_binary: bool) -> String {
    let suffix = if without_binary { WITHOUT_BINARY } else { "" };
    format!("{DERIVED_PREFIX}{CONVERTER}{suffix}")
}

/// The end of the tag of a `.sym` made from a debug file without its binary.
const WITHOUT_BINARY: &str = " without binary";

/// Whether the request's headers name a PDB's binary ([`CODE_FILE_HINT`]) or an ELF
/// module's build id ([`BUILD_ID_HINT`]).
pub(super) fn names_binary(headers: &HeaderMap) -> bool {
    headers.contains_key(CODE_FILE_HINT) || headers.contains_key(BUILD_ID_HINT)
}

/// Whether a cache entry is made again rather than served: made by another converter, or
/// made without the binary that this request (`names_binary`) names.
pub(super) fn remake(upstream: &str, names_binary: bool) -> bool {
    is_stale(upstream) || (names_binary && made_without_binary(upstream))
}

/// Whether a cache entry is a PDB's `.sym` made without its binary.
pub(super) fn made_without_binary(upstream: &str) -> bool {
    upstream.ends_with(WITHOUT_BINARY) && is_derived(upstream)
}

/// The `upstream` prefix of every derived entry, whatever converter made it.
pub(super) const DERIVED_PREFIX: &str = "derived:";

/// Whether a cache entry's `upstream` says it was made here, not downloaded.
pub(crate) fn is_derived(upstream: &str) -> bool {
    upstream.starts_with(DERIVED_PREFIX)
}

/// Whether a cache entry's `upstream` says it was made by an older (or newer) converter.
pub(super) fn is_stale(upstream: &str) -> bool {
    upstream
        .strip_prefix(DERIVED_PREFIX)
        .is_some_and(|c| c.strip_suffix(WITHOUT_BINARY).unwrap_or(c) != CONVERTER)
}

pub(super) struct Converter {
    enabled: bool,
    limits: DumpLimits,
    slots: tokio::sync::Semaphore,
}

impl Converter {
    pub(super) fn new(config: &Config) -> Self {
        let c = &config.symbolication;
        Self {
            enabled: c.on_demand,
            limits: DumpLimits {
                max_memory: c.convert_max_memory.as_u64(),
                timeout: c.convert_timeout,
                settings: (
                    "symbolication.convert_timeout",
                    "symbolication.convert_max_memory",
                ),
            },
            slots: tokio::sync::Semaphore::new(crate::config::or_per_core(c.max_conversions, 1)),
        }
    }
}

/// One way to make a `.sym`: the debug file and, optionally, the binary it belongs to
/// (merged by dump_syms for CFI and the code id). `expect` is the MODULE id the result must
/// carry.
#[derive(Debug, PartialEq, Eq)]
struct Recipe {
    debug: SymbolKey,
    binary: Option<SymbolKey>,
    /// The name the debug file is given for the converter (dump_syms names the module after
    /// it).
    name: String,
    expect: String,
}

impl Recipe {
    fn is_pdb(&self) -> bool {
        self.name.to_ascii_lowercase().ends_with(".pdb")
    }
}

/// Request headers naming the binary of the module whose `.sym` is asked for, as
/// rust-minidump's `?code_file=…&code_id=…` and a minidump's module list give it. A PDB's
/// `.sym` made together with its PE has the PE's CFI (`.pdata`, what x64 stackwalks unwind
/// with) and `INFO CODE_ID`. Never sent upstream (not in any `forward_headers`).
pub const CODE_FILE_HINT: &str = "x-symhub-code-file";
/// See [`CODE_FILE_HINT`]: the PE's code id (`%08X%x` of its timestamp and image size).
pub const CODE_ID_HINT: &str = "x-symhub-code-id";
/// An ELF module's whole build id, as rust-minidump's `code_id` gives it (lower-case hex):
/// a Breakpad id keeps only the first 16 bytes of a 20-byte GNU build id, so the debug file
/// of `<name>/<breakpad id>/<name>.sym` is found by this one. Never sent upstream.
pub const BUILD_ID_HINT: &str = "x-symhub-build-id";

/// Adds the binary's name and code id to `headers` as [`CODE_FILE_HINT`]/[`CODE_ID_HINT`],
/// if they can be a PE's (a name without a path, 9 to 16 hex digits), or the code id as
/// [`BUILD_ID_HINT`] if it can be an ELF build id of 16 bytes or more.
pub fn hint_code(headers: &mut HeaderMap, code_file: &str, code_id: &str) {
    // 16 hex digits can be either: an 8-byte build id (lld's `--build-id=fast`) or a PE's.
    if code_id.len() >= 16 {
        if let Ok(id) = BuildId::parse_hex(code_id) {
            if let Ok(v) = http::HeaderValue::from_str(id.as_str()) {
                headers.insert(BUILD_ID_HINT, v);
            }
        }
    }
    if code_id.len() > 16 {
        return;
    }
    let code_file = symhub_core::native::base_name(code_file);
    let id_ok = (9..=16).contains(&code_id.len()) && code_id.bytes().all(|b| b.is_ascii_hexdigit());
    if let (true, Ok(file), Ok(id)) = (
        id_ok && !code_file.is_empty(),
        http::HeaderValue::from_str(code_file),
        http::HeaderValue::from_str(&code_id.to_ascii_uppercase()),
    ) {
        headers.insert(CODE_FILE_HINT, file);
        headers.insert(CODE_ID_HINT, id);
    }
}

/// The PE key the hint headers name.
fn hinted_pe(headers: &HeaderMap) -> Option<SymbolKey> {
    let file = headers.get(CODE_FILE_HINT)?.to_str().ok()?;
    let id = headers.get(CODE_ID_HINT)?.to_str().ok()?;
    SymbolKey::from_segments(file, id, file).ok()
}

/// The build id a request names with [`BUILD_ID_HINT`].
fn hinted_build_id(headers: &HeaderMap) -> Option<BuildId> {
    BuildId::parse_hex(headers.get(BUILD_ID_HINT)?.to_str().ok()?).ok()
}

/// The recipes for `key`, most likely first; none when `key` is not a `.sym` key.
/// `build_id`: the module's whole ELF build id, when the request names it
/// ([`BUILD_ID_HINT`]); used only if its Breakpad id is the key's.
fn recipes(key: &SymbolKey, build_id: Option<&BuildId>) -> Vec<Recipe> {
    let (file, id, name) = (key.file(), key.id(), key.name());
    // Only the name Breakpad gives the module's `.sym` (`foo.pdb` → `foo.sym`, `libfoo.so` →
    // `libfoo.so.sym`; rust-minidump's code-info form `foo.dll` → `foo.sym`): any other name
    // would make the same file again under a key of its own.
    let breakpad_name = name.eq_ignore_ascii_case(&symhub_core::breakpad::sym_name(file))
        || name.eq_ignore_ascii_case(&symhub_core::breakpad::code_sym_name(file));
    if !key.is_triple() || !breakpad_name || file.contains('/') {
        return Vec::new();
    }
    let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
    // GUID + age. A PDB's age is unpadded hex, 1 to 8 digits (16 or more for a PDB relinked
    // incrementally that often); ELF and Mach-O ids always end in age 0.
    let pdb_id = hex && (33..=40).contains(&id.len());
    let breakpad_id = hex && id.len() == 33;
    let mut out = Vec::new();
    let k = |f: &str, i: &str, n: &str| SymbolKey::from_segments(f, i, n).ok();
    if file.to_ascii_lowercase().ends_with(".pdb") {
        if let (true, Some(debug)) = (pdb_id, k(file, id, file)) {
            out.push(Recipe {
                debug,
                binary: None,
                name: file.to_owned(),
                expect: id.to_ascii_uppercase(),
            });
        }
        return out;
    }
    if breakpad_id {
        // The debug file and the binary of the build id the request names, merged as for
        // the code-id form below.
        if let Some(b) = build_id {
            let bytes = hex::decode(b.as_str()).unwrap_or_default();
            let expect = symhub_core::native::elf_breakpad_id(&bytes);
            if let (true, Ok(debug), Ok(binary)) = (
                expect.eq_ignore_ascii_case(id),
                debuginfo_key(b),
                executable_key(b, file),
            ) {
                out.push(Recipe {
                    debug,
                    binary: Some(binary),
                    name: file.to_owned(),
                    expect,
                });
            }
        }
        if id.ends_with('0') {
            let guid = &id[..32];
            if let Some(build_id) = elf_build_id_of(guid) {
                if let Ok(debug) = debuginfo_key(&build_id) {
                    out.push(Recipe {
                        debug,
                        binary: executable_key(&build_id, file).ok(),
                        name: file.to_owned(),
                        expect: id.to_ascii_uppercase(),
                    });
                }
            }
            let uuid = guid.to_ascii_lowercase();
            if let Some(debug) = k("_.dwarf", &format!("mach-uuid-sym-{uuid}"), "_.dwarf") {
                out.push(Recipe {
                    debug,
                    binary: k(file, &format!("mach-uuid-{uuid}"), file),
                    name: file.to_owned(),
                    expect: id.to_ascii_uppercase(),
                });
            }
        }
        return out;
    }
    // Build ids of 16 bytes or more: shorter hex ids are PE code ids (`%08X%x`), and an
    // 8-byte build id is spelled by its Breakpad id anyway.
    if let Ok(build_id) = BuildId::parse_hex(id)
        .map_err(|_| ())
        .and_then(|b| match id.len() {
            32.. => Ok(b),
            _ => Err(()),
        })
    {
        let bytes = hex::decode(build_id.as_str()).unwrap_or_default();
        if let (Ok(debug), Ok(binary)) = (debuginfo_key(&build_id), executable_key(&build_id, file))
        {
            out.push(Recipe {
                debug,
                binary: Some(binary),
                name: file.to_owned(),
                expect: symhub_core::native::elf_breakpad_id(&bytes),
            });
        }
    }
    out
}

/// The build id a Breakpad id of an ELF file was made from (`elf_breakpad_id` backwards):
/// its first 16 bytes, or 8 when the rest is the zero padding of an 8-byte id.
fn elf_build_id_of(guid: &str) -> Option<BuildId> {
    let mut b = hex::decode(guid).ok()?;
    if b.len() != 16 {
        return None;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    let len = if b[8..].iter().all(|&x| x == 0) {
        8
    } else {
        16
    };
    BuildId::parse_hex(&hex::encode(&b[..len])).ok()
}

impl Cache {
    /// Whether a fill of `key` that found nothing upstream may make the file instead.
    pub(super) fn derivable(&self, fill: &Fill) -> bool {
        self.converter.enabled && !fill.from_store && !recipes(&fill.key, None).is_empty()
    }

    /// Makes the `.sym` of `fill`'s key from its debug file. `definitive` says whether the
    /// upstreams' "not found" was; a miss of this conversion is definitive only if every
    /// debug file it could be made from is definitively missing too.
    ///
    /// `headers`: the request's, which may name the PDB's binary ([`CODE_FILE_HINT`]).
    pub(super) async fn derive(
        self: &Arc<Self>,
        fill: &Arc<Fill>,
        definitive: bool,
        headers: &HeaderMap,
    ) -> Outcome {
        let mut unknown = !definitive;
        for recipe in recipes(&fill.key, hinted_build_id(headers).as_ref()) {
            let debug = match self.local_file(&recipe.debug).await {
                Ok(f) => Some(f),
                Err(NoFile::Missing) => None,
                Err(NoFile::Unknown) => {
                    unknown = true;
                    None
                }
            };
            // A binary keeps the debug file's name (dump_syms names the module after it), but
            // a PE its own (INFO CODE_ID names it).
            let binary = match (&recipe.binary, &debug) {
                (Some(b), _) => self.binary_file(b).await.map(|f| (f, recipe.name.clone())),
                (None, Some(_)) if recipe.is_pdb() => self.pe_of(&recipe, headers).await,
                (None, _) => None,
            };
            // A debug file whose binary is nowhere (yet): its `.sym` lacks CFI.
            let without_binary =
                debug.is_some() && binary.is_none() && (recipe.is_pdb() || recipe.binary.is_some());
            // An ELF or Mach-O binary that was never split carries its own debug info (and
            // its symbol table and CFI anyway): made alone when there is no debug file.
            let (input, binary) = match (debug, binary) {
                (Some(d), b) => (d, b),
                (None, Some((b, _))) => (b, None),
                (None, None) => continue,
            };
            // Made again when a request names the binary (see [`remake`]); a request whose
            // binary is nowhere (or not this PDB's) keeps the one made without it.
            if without_binary && names_binary(headers) {
                if let Some(made) = self.made_alone(fill).await {
                    return Outcome::Ready(made);
                }
            }
            let _slot = self.converter.slots.acquire().await;
            let made = self
                .convert(
                    &recipe,
                    &input,
                    binary.as_ref().map(|(f, n)| (f, n.as_str())),
                )
                .await;
            return match made {
                Ok(sym) => self.derived(fill, sym, without_binary).await,
                Err(Failure::Input(reason)) => {
                    tracing::warn!(key = %fill.key, from = %recipe.debug,
                        "cannot make this .sym on demand (remembered as missing): {reason}");
                    Outcome::NotFound { definitive: true }
                }
                Err(Failure::Here(reason)) => {
                    tracing::error!(key = %fill.key, from = %recipe.debug,
                        "cannot make this .sym on demand now (not remembered): {reason}");
                    Outcome::NotFound { definitive: false }
                }
            };
        }
        Outcome::NotFound {
            definitive: !unknown,
        }
    }

    /// The binary of a recipe: under its SSQP key (`<name>/elf-buildid-<id>/<name>`, as
    /// SSQP upstreams and uploads under that name have it), else an ELF binary by its build
    /// id alone (debuginfod's `executable`: the store's build-id index, packages, debuginfod
    /// upstreams), whatever name it was uploaded or installed under (re-test pass: a module
    /// named otherwise at run time got no CFI).
    async fn binary_file(self: &Arc<Self>, key: &SymbolKey) -> Option<LocalFile> {
        if let Ok(f) = self.local_file(key).await {
            return Some(f);
        }
        for by_id in crate::debuginfod::executable_keys_of(key) {
            if let Ok(f) = self.local_file(&by_id).await {
                return Some(f);
            }
        }
        None
    }

    /// The `.sym` of `fill`'s key already made without its binary, if any.
    async fn made_alone(self: &Arc<Self>, fill: &Fill) -> Option<Arc<super::Entry>> {
        let (index, key) = (self.index.clone(), fill.key.normalized().to_owned());
        let e = tokio::task::spawn_blocking(move || index.get(&key))
            .await
            .ok()?
            .ok()??;
        (made_without_binary(&e.upstream) && !is_stale(&e.upstream))
            .then(|| self.remember(e, fill.born))
    }

    /// The PE of a PDB's module, to make its `.sym` with: the one the request names, else
    /// one uploaded with the same debug id; only if its CodeView record names this PDB.
    async fn pe_of(
        self: &Arc<Self>,
        recipe: &Recipe,
        headers: &HeaderMap,
    ) -> Option<(LocalFile, String)> {
        let key = match hinted_pe(headers) {
            Some(k) => k,
            None => {
                let (store, id) = (self.store.clone(), recipe.expect.to_ascii_lowercase());
                let files = tokio::task::spawn_blocking(move || store.module_files(&id))
                    .await
                    .ok()?
                    .ok()?;
                let pe = files.into_iter().find(|f| f.kind == "PE")?;
                SymbolKey::parse_path(&pe.key).ok()?
            }
        };
        let pe = self.local_file(&key).await.ok()?;
        let reader = pe.reader();
        let name = key.file().to_owned();
        let ids = tokio::task::spawn_blocking(move || {
            let cache = object::read::ReadCache::new(reader);
            symhub_core::native::identify(&cache, &name).map(|found| {
                found
                    .objects
                    .into_iter()
                    .map(|o| (o.debug_id, o.code_id))
                    .collect::<Vec<_>>()
            })
        })
        .await
        .ok()?;
        match ids {
            // Its CodeView record names this PDB, and its own code id is the one it was asked
            // by (an upstream's file under another name's key would name the module wrongly).
            Ok(ids)
                if ids.iter().any(|(debug, code)| {
                    debug.eq_ignore_ascii_case(&recipe.expect)
                        && code
                            .as_ref()
                            .is_some_and(|c| c.eq_ignore_ascii_case(key.id()))
                }) =>
            {
                Some((pe, key.file().to_owned()))
            }
            _ => {
                tracing::info!(pe = %key, pdb = %recipe.debug,
                    "the named binary is not of this PDB; making the .sym without it");
                None
            }
        }
    }

    /// Runs the converter; the made `.sym`, checked to be of the module asked for.
    async fn convert(
        &self,
        recipe: &Recipe,
        input: &LocalFile,
        binary: Option<(&LocalFile, &str)>,
    ) -> Result<MadeSym, Failure> {
        let here = |what: &str, e: std::io::Error| Failure::Here(format!("{what}: {e}"));
        let dir = tempfile::tempdir_in(self.store.tmp_dir())
            .map_err(|e| here("cannot create a temp dir for the conversion", e))?;
        // dump_syms names the module after its input files, and an ELF or Mach-O pair shares
        // one name: each gets a directory of its own.
        let mut inputs = Vec::new();
        for (sub, file) in [
            ("debug", Some((input, recipe.name.as_str()))),
            ("binary", binary),
        ] {
            let Some((file, name)) = file else { continue };
            let at = dir.path().join(sub);
            let placed = std::fs::create_dir(&at).and_then(|()| place(file, &at, name));
            inputs.push(placed.map_err(|e| here("cannot place the input", e))?);
        }
        let out = dir.path().join("out.sym");
        let started = std::time::Instant::now();
        dump(&inputs, &out, self.converter.limits)
            .await
            .map_err(Failure::Input)?;
        if let Some((_, name)) = binary.filter(|_| recipe.is_pdb()) {
            name_code_file(&out, name).map_err(|e| here("cannot name the PE", e))?;
        }
        let module = read_module_line(&out).map_err(|e| here("unreadable result", e))?;
        let header = symhub_core::breakpad::parse_sym_header(module.as_bytes())
            .map_err(|e| Failure::Input(format!("dump_syms wrote no valid MODULE line: {e}")))?;
        if !header.debug_id.eq_ignore_ascii_case(&recipe.expect) {
            return Err(Failure::Input(format!(
                "the debug file is of module {}, not {} (a mislabelled upstream file)",
                header.debug_id, recipe.expect
            )));
        }
        tracing::info!(from = %recipe.debug, input_bytes = input.entry.size,
            took_ms = started.elapsed().as_millis() as u64, converter = CONVERTER, "made a .sym on demand");
        Ok(MadeSym { _dir: dir, out })
    }

    /// Hands a made `.sym` to the fill: copied into a cache temp object (hashed as it is
    /// written), announced to the waiting requests, then committed by the caller.
    async fn derived(
        self: &Arc<Self>,
        fill: &Arc<Fill>,
        sym: MadeSym,
        without_binary: bool,
    ) -> Outcome {
        let objects = self.objects.clone();
        let temp = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut temp = objects.writer()?;
            temp.append_from(&mut std::fs::File::open(&sym.out)?, u64::MAX)?;
            Ok(temp)
        })
        .await;
        let temp = match temp {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::error!(key = %fill.key, "cannot write a made .sym to the cache: {e}");
                return Outcome::Ended(Ended::Failed);
            }
            Err(_) => return Outcome::Ended(Ended::Failed),
        };
        let upstream: Arc<str> = derived_tag(without_binary).into();
        let now = SystemTime::now();
        fill.state.send_replace(FillState::Streaming(Progress {
            file: temp.file().clone(),
            len: Some(temp.written()),
            written: temp.written(),
            upstream: upstream.clone(),
            last_modified: now,
            done: None,
        }));
        Outcome::Ended(Ended::Written {
            temp,
            upstream,
            last_modified: now,
        })
    }
}

/// Why no `.sym` came out: the input (remembered as missing: it will not convert next time
/// either), or this machine (not remembered: the disk, the temp dir).
enum Failure {
    Input(String),
    Here(String),
}

struct MadeSym {
    _dir: tempfile::TempDir,
    out: PathBuf,
}

fn read_module_line(path: &std::path::Path) -> std::io::Result<String> {
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(path)?)
        .take(64 * 1024)
        .read_line(&mut line)?;
    Ok(line)
}

#[cfg(test)]
#[path = "derive_tests.rs"]
mod tests;
