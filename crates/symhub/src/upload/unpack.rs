//! Files inside uploaded files, copied out into the store's temp directory as received files
//! of their own, each bounded by `upload.max_size`: a zip's members (`.nupkg`, `.snupkg`), a
//! byte range (one architecture of a fat Mach-O) and a deflated portable PDB embedded in a
//! .NET PE. Blocking work runs on the blocking pool.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use symhub_core::native::Embedded;

use super::files::MAX_MEMBERS;
use super::{blocking, UploadError, Uploads};
use crate::store::symbols::Received;
use crate::store::{SymbolStore, TempObject};

/// Copies at most `limit` bytes of `from` into a new temp object; more is an error.
pub(super) fn copy_bounded(
    store: &SymbolStore,
    from: &mut impl Read,
    limit: u64,
) -> Result<Received, UploadError> {
    let mut out: TempObject = store.writer()?;
    if !out.append_from(from, limit)? {
        return Err(UploadError::TooLarge(limit));
    }
    let done = out.finish()?;
    Ok(Received {
        path: done.temp,
        size: done.size,
        sha256: done.sha256,
    })
}

/// Whether a zip member's name is worth opening: a debug file format, by its first bytes,
/// is checked after; this only skips directories and the package's own metadata.
fn maybe_debug_file(name: &str) -> bool {
    !(name.ends_with('/')
        || name.starts_with("_rels/")
        || name.starts_with("package/")
        || name == "[Content_Types].xml"
        || name.ends_with(".nuspec")
        || name.ends_with(".xml")
        || name.ends_with(".psmdcp"))
}

impl Uploads {
    /// The members of a zip that may be debug files, each as a received file with its base
    /// name, or a note saying why one was left out. An SSQP package (a zip with a
    /// `symbol_index.json`) is refused: `symhub package add` keeps its own key mapping.
    pub(super) async fn unpack_zip(
        &self,
        zip: &Received,
    ) -> Result<Vec<Result<(String, Received), String>>, UploadError> {
        let (store, path, limit) = (self.store.clone(), zip.path.to_path_buf(), self.max_size());
        let max_ratio = self.max_ratio;
        blocking(move || {
            let mut archive = zip::ZipArchive::new(File::open(&path)?)
                .map_err(|e| UploadError::NotDebugFile(format!("an unreadable zip: {e}")))?;
            if archive.len() > MAX_MEMBERS {
                return Err(UploadError::NotDebugFile(format!(
                    "a zip of {} files (at most {MAX_MEMBERS} are unpacked)",
                    archive.len()
                )));
            }
            if archive.has_duplicate_names() {
                return Err(UploadError::NotDebugFile(
                    "a zip that names an entry twice (which one counts depends on the zip \
                     reader)"
                        .into(),
                ));
            }
            if archive.index_for_name("symbol_index.json").is_some() {
                return Err(UploadError::NotDebugFile(
                    "an SSQP package (it has a symbol_index.json): add it with `symhub package \
                     add` or PUT /api/packages/<name>"
                        .into(),
                ));
            }
            let mut out = Vec::new();
            for i in 0..archive.len() {
                let mut entry = match archive.by_index(i) {
                    Ok(e) => e,
                    Err(e) => {
                        out.push(Err(format!("zip member {i}: {e}")));
                        continue;
                    }
                };
                let name = match entry.name() {
                    Ok(n) => n.into_owned(),
                    Err(e) => {
                        out.push(Err(format!("zip member {i}: {e}")));
                        continue;
                    }
                };
                if !entry.is_file() || !maybe_debug_file(&name) {
                    continue;
                }
                if entry.size() > limit {
                    out.push(Err(format!("{name}: larger than upload.max_size")));
                    continue;
                }
                // A zip bomb, refused whole as `symhub package add` refuses one. (The zip
                // reader stops a member at the size its header gives; the copy is bounded
                // all the same.)
                let bomb = || {
                    UploadError::NotDebugFile(format!(
                        "{name}: a compression ratio above packages.max_ratio ({max_ratio}:1), \
                         a zip bomb; nothing in this zip was stored"
                    ))
                };
                let by_ratio =
                    crate::package::archive::ratio_bound(entry.compressed_size(), max_ratio);
                if entry.size() > by_ratio {
                    return Err(bomb());
                }
                let base = symhub_core::native::base_name(&name).to_owned();
                match copy_bounded(&store, &mut entry, limit.min(by_ratio)) {
                    Ok(file) if file.size > 0 => out.push(Ok((base, file))),
                    Ok(_) => {}
                    Err(UploadError::TooLarge(_)) if by_ratio < limit => return Err(bomb()),
                    Err(UploadError::TooLarge(_)) => {
                        out.push(Err(format!("{name}: unpacks to more than upload.max_size")))
                    }
                    Err(UploadError::NoSpace) => return Err(UploadError::NoSpace),
                    // The member's bytes are bad (a CRC or deflate error, a size that lies,
                    // a compression method this build does not read): that member only.
                    Err(e) => out.push(Err(format!("{name}: unreadable in the zip: {e}"))),
                }
            }
            Ok(out)
        })
        .await
    }

    /// `(offset, length)` of a received file, as a received file of its own.
    pub(super) async fn copy_range(
        &self,
        file: &Received,
        (offset, length): (u64, u64),
    ) -> Result<Received, UploadError> {
        let (store, path) = (self.store.clone(), file.path.to_path_buf());
        if offset.checked_add(length).is_none_or(|end| end > file.size) {
            return Err(UploadError::NotDebugFile(format!(
                "a part ({offset}+{length}) lies outside the file"
            )));
        }
        blocking(move || {
            let mut f = File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            copy_bounded(&store, &mut f.take(length), length)
        })
        .await
    }

    /// Unpacks a portable PDB embedded in a PE. The error is a note for the report: the PE
    /// itself is still stored.
    pub(super) async fn inflate_embedded(
        &self,
        file: &Received,
        e: &Embedded,
    ) -> Result<Received, String> {
        let (store, path, limit) = (self.store.clone(), file.path.to_path_buf(), self.max_size());
        let (offset, length) = e.deflated;
        let claimed = e.size;
        let name = e.name.clone();
        let unpacked = blocking(move || {
            if claimed > limit {
                return Err(UploadError::TooLarge(limit));
            }
            let mut f = File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut inflate = flate2::read::DeflateDecoder::new(f.take(length));
            // The claimed size bounds the output: a stream that unpacks to more is refused.
            copy_bounded(&store, &mut inflate, claimed)
        })
        .await
        .map_err(|err| format!("{name}: {err}"))?;
        if unpacked.size != claimed {
            return Err(format!(
                "{name}: unpacks to {} bytes, the PE says {claimed}",
                unpacked.size
            ));
        }
        Ok(unpacked)
    }
}
