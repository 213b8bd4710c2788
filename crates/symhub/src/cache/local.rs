//! The bytes of a key as a local file, for consumers inside symhub: a converter that needs a
//! PDB, the symbolicator that parses a `.sym`. Same lookup as a client's request (store,
//! code-id redirect, cache, negative entry, fill), but a fill is waited for rather than
//! streamed, and a stored file that lives only in the bucket is copied down rather than
//! redirected to.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderMap;
use symhub_core::SymbolKey;

use super::{Cache, Entry, FillState, Lookup, Source};
use crate::store::modules::LocalBlob;

/// A key's file, open, and readable by path for as long as this value lives.
pub struct LocalFile {
    pub entry: Arc<Entry>,
    pub file: Arc<File>,
    /// A copy of a stored file fetched from the bucket (deleted when dropped), when this
    /// instance has none of its own.
    blob: Option<LocalBlob>,
}

impl LocalFile {
    /// Where the bytes are on disk. A cache entry may be evicted meanwhile: [`LocalFile::file`]
    /// stays readable whatever happens to the path.
    /// A reader of the bytes from the start, with its own position (the descriptor is shared).
    pub fn reader(&self) -> super::fill::FillReader {
        super::fill::FillReader::committed(self.file.clone())
    }

    pub fn path(&self) -> &Path {
        match &self.blob {
            Some(b) => b.path(),
            None => &self.entry.path,
        }
    }
}

/// Why a key has no local file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFile {
    /// Nobody has it (or it is blocked, or remembered as missing).
    Missing,
    /// It could not be found out now (an upstream failed, the bucket is unreachable): not a
    /// definitive answer.
    Unknown,
}

impl Cache {
    /// The file of `key` from wherever it is, fetching it from upstreams (and waiting for the
    /// download) when it must. Code-id `.sym` keys are followed to their debug-id key.
    pub async fn local_file(self: &Arc<Self>, key: &SymbolKey) -> Result<LocalFile, NoFile> {
        self.local_file_with(key, &HeaderMap::new()).await
    }

    /// [`Cache::local_file`] with request headers: what a fill started by this lookup is
    /// told (a `.sym` made on demand reads [`super::derive::CODE_FILE_HINT`]).
    pub async fn local_file_with(
        self: &Arc<Self>,
        key: &SymbolKey,
        headers: &HeaderMap,
    ) -> Result<LocalFile, NoFile> {
        // An entry evicted between lookup and open is looked up once more.
        for _ in 0..3 {
            let entry = self.entry_with(key, headers).await?;
            match self.open_entry(&entry) {
                Ok(file) => {
                    return Ok(LocalFile {
                        entry,
                        file,
                        blob: None,
                    })
                }
                // Served by bucket redirects: this instance may have no copy of its own.
                Err(_) if entry.source == Source::Store && self.store_redirects => {
                    return self.bucket_copy(entry).await
                }
                Err(_) => self.forget(&entry.key).await,
            }
        }
        Err(NoFile::Unknown)
    }

    /// The entry `key` answers with now, without opening its file: what
    /// [`Cache::local_file_with`] would read, waiting for a fill when there is one. Cheap for a
    /// key memory knows (no file is opened or copied from the bucket), so a parse of an older
    /// file can be told from the current one by [`Entry::sha256`]. A code-id `.sym` key is
    /// followed to its debug-id key (at most two redirects).
    pub async fn entry_with(
        self: &Arc<Self>,
        key: &SymbolKey,
        headers: &HeaderMap,
    ) -> Result<Arc<Entry>, NoFile> {
        let mut key = key.clone();
        for attempt in 0..3 {
            if self.blocklist.is_match(key.normalized()) {
                return Err(NoFile::Missing);
            }
            return match self.lookup(&key, headers.into(), true, None).await {
                Lookup::Hit(entry) => Ok(entry),
                Lookup::Redirect(to) => {
                    key = SymbolKey::parse_path(&to).map_err(|_| NoFile::Missing)?;
                    continue;
                }
                Lookup::Negative | Lookup::LocalOnly => Err(NoFile::Missing),
                Lookup::Unavailable => Err(NoFile::Unknown),
                // Not on the last look, which takes what it finds (as `resolve_with` does).
                Lookup::Fill { fill, leader }
                    if attempt < 2 && !leader && self.made_alone_for(&fill, headers).await =>
                {
                    continue;
                }
                Lookup::Fill { fill, .. } => match fill.headers().await {
                    FillState::Ready(entry) => Ok(entry),
                    FillState::Streaming(_) => match fill.finished().await {
                        Ok(Some(entry)) => Ok(entry),
                        _ => Err(NoFile::Unknown),
                    },
                    FillState::NotFound => Err(NoFile::Missing),
                    FillState::Resolving
                    | FillState::Failed
                    | FillState::Unavailable
                    | FillState::Vanished => Err(NoFile::Unknown),
                },
            };
        }
        Err(NoFile::Unknown)
    }

    async fn bucket_copy(&self, entry: Arc<Entry>) -> Result<LocalFile, NoFile> {
        let store = self.store.clone();
        let (sha, size) = (entry.sha256.clone(), entry.size);
        let blob = tokio::task::spawn_blocking(move || store.local_blob(&sha, size))
            .await
            .map_err(|_| NoFile::Unknown)?
            .map_err(|e| {
                tracing::warn!(key = %entry.key, "cannot copy a stored file from the bucket: {e}");
                NoFile::Unknown
            })?;
        let file = File::open(blob.path()).map_err(|_| NoFile::Unknown)?;
        Ok(LocalFile {
            entry,
            file: Arc::new(file),
            blob: Some(blob),
        })
    }
}

/// Gives a converter `local` under the name `name` in `dir`: a hard link when the file is
/// still where its entry says (the cache and the store live on one file system), else a copy
/// through the open descriptor (an entry evicted meanwhile stays readable through it).
pub fn place(local: &LocalFile, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let to = dir.join(name);
    if std::fs::hard_link(local.path(), &to).is_ok() {
        return Ok(to);
    }
    let mut out = File::create(&to)?;
    std::io::copy(&mut local.reader(), &mut out)?;
    Ok(to)
}
