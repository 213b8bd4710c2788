//! Reading an SSQP zip package without trusting it: every entry is checked before any byte
//! is extracted, and extraction re-checks what the headers promised.
//!
//! Refused: names that are absolute, hold `..`, `\`, NUL or a drive letter (zip slip);
//! symlinks; encrypted entries; methods other than stored and deflate; more entries or more
//! unpacked bytes than the limits; entries whose declared ratio is a bomb's; entries that
//! unpack to a size other than the one declared (a lying header); a `symbol_index.json`
//! that is missing (unless portable PDBs give keys), too big, not an array of
//! `{clientKey, blobPath}`, with an invalid key, a blobPath that is not a regular file in the
//! zip, or a clientKey twice. Blobs are named by their hash, never by an entry name, so no
//! name ever becomes a path on disk. A zip inside the zip is just a blob.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};

use serde::Deserialize;
use symhub_core::ppdb::{portable_pdb_key, PREFIX_LIMIT};
use symhub_core::SymbolKey;
use zip::{CompressionMethod, ZipArchive};

use crate::config::PackageConfig;
use crate::store::SymbolStore;

pub const INDEX_NAME: &str = "symbol_index.json";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("not a readable zip file: {0}")]
    NotZip(String),
    #[error("entry `{0}` has an unsafe name (absolute, `..`, `\\`, NUL or a drive letter)")]
    UnsafeName(String),
    #[error("an entry name is in the package twice: which entry counts depends on the zip reader")]
    DuplicateEntries,
    #[error("entry `{0}` is a symbolic link")]
    Symlink(String),
    #[error("entry `{0}` is encrypted")]
    Encrypted(String),
    #[error("entry `{0}` uses compression method {1}; only stored and deflate are accepted")]
    Method(String, String),
    #[error("the package has more than packages.max_entries ({0}) entries")]
    TooManyEntries(usize),
    #[error("the package unpacks to more than packages.max_unpacked_size ({0} bytes)")]
    TooBig(u64),
    #[error("the package is larger than packages.max_size ({0} bytes)")]
    ZipTooBig(u64),
    #[error("entry `{0}` claims a compression ratio above packages.max_ratio ({1}:1)")]
    Bomb(String, u64),
    #[error("entry `{0}` does not unpack to the size its header declares")]
    LyingSize(String),
    #[error("the package has no `symbol_index.json` at its root and no portable PDB to derive keys from")]
    NoIndex,
    #[error("symbol_index.json: {0}")]
    BadIndex(String),
    #[error("symbol_index.json: clientKey `{key}` is not a valid key: {reason}")]
    BadKey { key: String, reason: String },
    #[error("symbol_index.json: blobPath `{0}` is not a file in the package")]
    MissingBlob(String),
    #[error("symbol_index.json maps {count} clientKey(s) more than once: {shown}")]
    Duplicates { count: usize, shown: String },
    #[error("reading entry `{0}`: {1}")]
    Read(String, String),
    #[error("package `{0}` exists: replacing it needs an admin key (the keys the new zip lacks would go)")]
    ReplaceNeedsAdmin(String),
    #[error("storage error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<std::io::Error> for PackageError {
    fn from(e: std::io::Error) -> Self {
        PackageError::Internal(e.into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexEntry {
    #[serde(rename = "clientKey")]
    client_key: String,
    #[serde(rename = "blobPath")]
    blob_path: String,
}

/// What the package says, checked: explicit mappings (key → entry index) and the entries
/// that may be portable PDBs to derive keys from.
pub struct Plan {
    pub explicit: Vec<Mapping>,
    pub pdbs: Vec<usize>,
    pub names: Vec<String>,
    pub sizes: Vec<u64>,
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && name.as_bytes().get(1).is_none_or(|b| *b != b':')
        && name.split('/').all(|c| c != ".." && c != ".")
}

/// The most a zip entry of `compressed` bytes may unpack to before it is a bomb: `max_ratio`
/// (`packages.max_ratio`) times its compressed size, and never less than 1 MiB, since small
/// entries may compress very well legitimately (runs of zeros). Used for SSQP packages and
/// for zips of build output (`upload::unpack`).
pub fn ratio_bound(compressed: u64, max_ratio: u64) -> u64 {
    compressed.saturating_mul(max_ratio).max(1 << 20)
}

/// Checks every entry and the index. Blocking.
pub fn inspect<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    limits: &PackageConfig,
) -> Result<Plan, PackageError> {
    let count = zip.len();
    if count > limits.max_entries {
        return Err(PackageError::TooManyEntries(limits.max_entries));
    }
    // Zip readers disagree on which of two same-named entries counts (this one keeps the
    // last, others the first): another tool would see a different package.
    if zip.has_duplicate_names() {
        return Err(PackageError::DuplicateEntries);
    }
    let mut names = Vec::with_capacity(count);
    let mut sizes = Vec::with_capacity(count);
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut index_entry = None;
    let mut pdbs = Vec::new();
    let mut total = 0u64;
    for i in 0..count {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| PackageError::NotZip(e.to_string()))?;
        let name = e
            .name()
            .map_err(|_| {
                PackageError::UnsafeName(String::from_utf8_lossy(e.name_raw()).into_owned())
            })?
            .into_owned();
        if !safe_name(&name) || e.enclosed_name().is_none() {
            return Err(PackageError::UnsafeName(name));
        }
        if e.is_symlink() {
            return Err(PackageError::Symlink(name));
        }
        if e.encrypted() {
            return Err(PackageError::Encrypted(name));
        }
        let method = e.compression();
        if !e.is_dir()
            && !matches!(
                method,
                CompressionMethod::Stored | CompressionMethod::Deflated
            )
        {
            return Err(PackageError::Method(name, format!("{method:?}")));
        }
        total = total.saturating_add(e.size());
        if total > limits.max_unpacked_size.as_u64() {
            return Err(PackageError::TooBig(limits.max_unpacked_size.as_u64()));
        }
        if e.size() > ratio_bound(e.compressed_size(), limits.max_ratio) {
            return Err(PackageError::Bomb(name, limits.max_ratio));
        }
        if !e.is_dir() {
            if name == INDEX_NAME {
                index_entry = Some(i);
            } else if name.to_ascii_lowercase().ends_with(".pdb") {
                pdbs.push(i);
            }
            by_name.insert(name.clone(), i);
        }
        names.push(name);
        sizes.push(e.size());
    }
    let explicit = match index_entry {
        Some(i) => read_index(zip, i, &by_name, limits)?,
        None if pdbs.is_empty() => return Err(PackageError::NoIndex),
        None => Vec::new(),
    };
    Ok(Plan {
        explicit,
        pdbs,
        names,
        sizes,
    })
}

/// One explicit mapping, kept small: 1 M of them must fit comfortably in memory.
pub struct Mapping {
    /// As the package spells it; normalized again when written.
    pub key: Box<str>,
    pub entry: u32,
}

fn read_index<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    i: usize,
    by_name: &HashMap<String, usize>,
    limits: &PackageConfig,
) -> Result<Vec<Mapping>, PackageError> {
    let max = limits.max_index_size.as_u64();
    let entry = zip
        .by_index(i)
        .map_err(|e| PackageError::Read(INDEX_NAME.into(), e.to_string()))?;
    if entry.size() > max {
        return Err(PackageError::BadIndex(format!(
            "larger than packages.max_index_size ({max} bytes)"
        )));
    }
    let reader = BufReader::new(entry.take(max + 1));
    let mut de = serde_json::Deserializer::from_reader(reader);
    // Streamed element by element: the array is never held whole.
    let visitor = IndexVisitor {
        by_name,
        failure: None,
    };
    let result = serde::Deserializer::deserialize_seq(&mut de, visitor);
    match result {
        Ok(Ok(list)) => Ok(list),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(PackageError::BadIndex(format!(
            "{e}; expected a JSON array of {{\"clientKey\": …, \"blobPath\": …}}"
        ))),
    }
}

struct IndexVisitor<'a> {
    by_name: &'a HashMap<String, usize>,
    failure: Option<PackageError>,
}

impl<'de> serde::de::Visitor<'de> for IndexVisitor<'_> {
    type Value = Result<Vec<Mapping>, PackageError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of {\"clientKey\": …, \"blobPath\": …}")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(item) = seq.next_element::<IndexEntry>()? {
            if self.failure.is_some() {
                continue;
            }
            if let Err(e) = SymbolKey::parse_client_key(&item.client_key) {
                self.failure = Some(PackageError::BadKey {
                    key: item.client_key,
                    reason: e.to_string(),
                });
                continue;
            }
            let blob = item.blob_path.trim_start_matches("./");
            match self.by_name.get(blob) {
                Some(&entry) => out.push(Mapping {
                    key: item.client_key.into_boxed_str(),
                    entry: entry as u32,
                }),
                None => self.failure = Some(PackageError::MissingBlob(item.blob_path)),
            }
        }
        Ok(match self.failure {
            Some(e) => Err(e),
            None => Ok(out),
        })
    }
}

/// A blob extracted into the store, claimed against garbage collection until the package
/// that uses it is live.
pub struct Blob<'a> {
    _claim: crate::store::BlobClaim<'a>,
    pub sha256: String,
    pub size: u64,
    /// For a `.pdb` entry that is a portable PDB: the key derived from its own id.
    pub derived: Option<SymbolKey>,
}

/// Unpacks entry `i` into the store's blob directory, checking its size and CRC. Blocking.
pub fn extract<'s>(
    zip: &mut ZipArchive<File>,
    i: usize,
    declared: u64,
    derive_as: Option<&str>,
    store: &'s SymbolStore,
    before_new_blob: &dyn Fn(&str) -> Result<(), PackageError>,
) -> Result<Blob<'s>, PackageError> {
    // Errors name the entry as the package does, so the publisher can find it.
    let name = zip
        .name_for_index(i)
        .and_then(Result::ok)
        .map(|n| n.into_owned())
        .unwrap_or_else(|| format!("#{i}"));
    let mut entry = zip
        .by_index(i)
        .map_err(|e| PackageError::Read(name.clone(), e.to_string()))?;
    let mut out = store.writer()?;
    let mut prefix = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|e| PackageError::Read(name.clone(), e.to_string()))?;
        if n == 0 {
            break;
        }
        if out.written() + n as u64 > declared {
            return Err(PackageError::LyingSize(name));
        }
        if derive_as.is_some() && prefix.len() < PREFIX_LIMIT {
            let take = (PREFIX_LIMIT - prefix.len()).min(n);
            prefix.extend_from_slice(&buf[..take]);
        }
        out.write(&buf[..n])?;
    }
    if out.written() != declared {
        return Err(PackageError::LyingSize(name));
    }
    let done = out.finish()?;
    let (sha256, size) = (done.sha256.clone(), done.size);
    let claim = store
        .claim(&sha256)
        .map_err(|e| PackageError::Internal(e.into()))?;
    if !store.has_blob(&sha256)? {
        before_new_blob(&sha256)?;
        store.put_blob(done, &sha256)?;
    }
    // The prefix is only ever needed for this; it is dropped here, one entry at a time.
    let derived = derive_as.and_then(|base| portable_pdb_key(base, &prefix));
    Ok(Blob {
        _claim: claim,
        sha256,
        size,
        derived,
    })
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn zip_slip_names() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "C:/x",
            "a/./b",
            "",
            "a\0b",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        for good in ["a", "lib/foo.pdb", "x/y/z.dll", "symbol_index.json"] {
            assert!(safe_name(good), "{good:?}");
        }
    }
}
