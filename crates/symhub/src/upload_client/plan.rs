//! What `symhub upload` finds before it sends anything: every file under the given paths,
//! identified from its bytes by the same code the server uses (`symhub_core::native`), with
//! the keys it will be stored under — all `--dry-run` prints, and what the skip check asks.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use symhub_core::breakpad::{parse_sym_header, SymHeader, HEADER_LIMIT};
use symhub_core::native::{self, Format, Identified};
use symhub_core::SymbolKey;

/// One file found.
pub struct Planned {
    pub path: PathBuf,
    /// The name it is uploaded as (its base name).
    pub name: String,
    pub size: u64,
    pub what: What,
}

pub enum What {
    Native(Identified),
    Breakpad(SymHeader),
    /// A `.nupkg`/`.snupkg` or other zip: the server unpacks and identifies its members.
    Zip,
    /// Not a debug file: left alone.
    Other(String),
    /// A debug file by its first bytes that cannot be read or keyed (cut short, damaged):
    /// an error of the run, with the reason.
    Refused(String),
}

impl Planned {
    pub fn is_upload(&self) -> bool {
        !matches!(self.what, What::Other(_) | What::Refused(_))
    }

    /// Whether the server makes a `.sym` from it: sent after the binaries, so the `.sym` is
    /// made once, from both, rather than again when the binary arrives.
    pub fn has_debug_info(&self) -> bool {
        matches!(&self.what, What::Native(found) if found.objects.iter().any(|o| o.has_debug_info))
    }

    /// The keys the whole file is stored under, when they are known here (not for a zip or
    /// a fat Mach-O, whose parts are stored instead).
    pub fn whole_file_keys(&self) -> Option<Vec<SymbolKey>> {
        match &self.what {
            What::Native(found) => match found.objects.as_slice() {
                [one] if one.range.is_none() => Some(one.keys.clone()),
                _ => None,
            },
            What::Breakpad(h) => h.key().ok().map(|k| vec![k]),
            _ => None,
        }
    }

    /// Keys of files the server makes from this one (its Breakpad `.sym`).
    pub fn derived_keys(&self) -> Vec<SymbolKey> {
        match &self.what {
            What::Native(found) => found
                .objects
                .iter()
                .filter(|o| o.has_debug_info)
                .filter_map(|o| o.breakpad_key.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `--dry-run`'s lines for this file.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.what {
            What::Native(found) => {
                for o in &found.objects {
                    out.push(format!(
                        "{} {}: {} {}",
                        o.format.kind(),
                        o.arch.as_deref().unwrap_or("-"),
                        o.debug_file,
                        o.debug_id
                    ));
                    out.extend(o.keys.iter().map(|k| format!("  {k}")));
                    if let Some(k) = o.breakpad_key.as_ref().filter(|_| o.has_debug_info) {
                        // A debug file named by its build id (`.build-id/xx/….debug`) does
                        // not name the module: the server waits for the binary.
                        let debug_only = o.keys.iter().all(|k| k.file().starts_with("_."));
                        if debug_only && !symhub::upload::meaningful_module_name(&o.debug_file) {
                            out.push(format!(
                                "  .sym made by the server once the module's binary is uploaded \
                                 (this file's name, {}, is not the module's)",
                                o.debug_file
                            ));
                        } else {
                            out.push(format!("  {k}  (Breakpad, made by the server)"));
                        }
                    }
                }
                for e in &found.embedded {
                    out.push(format!("  + embedded portable PDB {}", e.name));
                }
            }
            What::Breakpad(h) => {
                out.push(format!(
                    "BREAKPAD {}: {} {}",
                    h.arch, h.debug_file, h.debug_id
                ));
                if let Ok(k) = h.key() {
                    out.push(format!("  {k}"));
                }
            }
            What::Zip => {
                out.push("ZIP: each debug file inside is keyed (as the server will):".into());
                match zip_members(&self.path) {
                    Ok(members) => {
                        for (name, member) in members {
                            out.push(format!("  {name}"));
                            out.extend(member.describe().into_iter().map(|l| format!("  {l}")));
                        }
                    }
                    Err(e) => out.push(format!("  unreadable zip: {e:#}")),
                }
            }
            What::Other(why) => out.push(format!("skipped: {why}")),
            What::Refused(why) => out.push(format!("REFUSED: {why}")),
        }
        out
    }
}

/// Every regular file under `paths`, sorted, without following directory symlinks (a
/// build tree may link back to itself).
pub fn find_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(path: &Path, top: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let meta = if top {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        }
        .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, false, out)?;
            }
        } else if meta.is_file() || (meta.file_type().is_symlink() && path.is_file()) {
            out.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, true, &mut out)?;
    }
    Ok(out)
}

/// Identifies one file (headers only, through a `ReadCache`).
pub fn plan(path: &Path) -> anyhow::Result<Planned> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEADER_LIMIT.min(size as usize));
    (&mut file)
        .take(HEADER_LIMIT as u64)
        .read_to_end(&mut head)?;
    let what = match Format::sniff(&head) {
        None => What::Other("not a debug file".into()),
        Some(Format::Zip) => What::Zip,
        Some(Format::Breakpad) => match parse_sym_header(&head) {
            Ok(h) => What::Breakpad(h),
            Err(e) => What::Refused(format!("not a valid Breakpad file: {e}")),
        },
        Some(_) => {
            let cache = object::read::ReadCache::new(file);
            match native::identify(&cache, &name) {
                Ok(found) => What::Native(found),
                Err(e) => What::Refused(e.to_string()),
            }
        }
    };
    Ok(Planned {
        path: path.to_path_buf(),
        name,
        size,
        what,
    })
}

/// The members of a zip that are debug files, each identified from a temp copy (a zip
/// member cannot be read at offsets). For `--dry-run`: at most 10,000 members, each at most
/// 2 GiB, like the server's limits.
fn zip_members(path: &Path) -> anyhow::Result<Vec<(String, Planned)>> {
    const MAX_MEMBERS: usize = 10_000;
    const MAX_SIZE: u64 = 2 << 30;
    let mut archive = zip::ZipArchive::new(File::open(path)?)?;
    anyhow::ensure!(archive.len() <= MAX_MEMBERS, "{} members", archive.len());
    let dir = tempfile::tempdir()?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let name = entry.name()?.into_owned();
        if !entry.is_file() || entry.size() > MAX_SIZE {
            continue;
        }
        let base = symhub_core::native::base_name(&name).to_owned();
        if base.is_empty() {
            continue;
        }
        // One directory per member, so the copy has the member's own name (keys use it).
        let at = dir.path().join(i.to_string());
        std::fs::create_dir(&at)?;
        let copy = at.join(&base);
        let mut to = File::create(&copy)?;
        std::io::copy(&mut (&mut entry).take(MAX_SIZE), &mut to)?;
        let member = plan(&copy)?;
        if !matches!(member.what, What::Other(_)) {
            out.push((name, member));
        }
    }
    Ok(out)
}

/// Hex SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
