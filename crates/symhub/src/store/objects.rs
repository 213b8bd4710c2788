//! A directory of immutable objects named by a hash, written only through atomic commits.
//!
//! Layout under the directory's root:
//! - `tmp/` — files being written. Nothing here is ever served; start-up empties it, so a
//!   crash at any moment leaves nothing partial behind.
//! - `objects/<2 hex>/<64 hex>` — committed objects. An object appears here only by
//!   `rename(2)` of a temp file whose length (and hash) was checked and which was fsynced.
//!
//! Object names are SHA-256 digests of the normalized key, never the key itself, so no
//! client-supplied string ever becomes a path component.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempPath;

/// The on-disk name of a key: hex SHA-256 of its normalized form.
pub fn object_id(normalized_key: &str) -> String {
    hex::encode(Sha256::digest(normalized_key.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct ObjectDir {
    root: PathBuf,
}

impl ObjectDir {
    /// Opens (creating if needed) the directory and removes temp files left by a crash.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let dir = Self {
            root: root.to_path_buf(),
        };
        std::fs::create_dir_all(dir.objects_root())
            .with_context(|| format!("cannot create {}", dir.objects_root().display()))?;
        let tmp = dir.tmp_dir();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| {
                format!("cannot clear leftover temp files in {}", tmp.display())
            })?;
        }
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(dir)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn objects_root(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.objects_root().join(&id[..2]).join(id)
    }

    /// A new, uniquely named temp file. The file is deleted when the [`TempPath`] is dropped
    /// before [`ObjectDir::commit`], so an abandoned write cleans up after itself.
    pub fn temp_file(&self) -> io::Result<(File, TempPath)> {
        let f = tempfile::Builder::new()
            .prefix("fill-")
            .tempfile_in(self.tmp_dir())?;
        Ok(f.into_parts())
    }

    /// Makes a fully written temp file visible as object `id`: fsync the data, rename into
    /// place, fsync the directory so the rename itself survives a power cut.
    pub fn commit(&self, file: &File, temp: TempPath, id: &str) -> io::Result<PathBuf> {
        file.sync_all()?;
        let dest = self.path(id);
        let parent = dest.parent().expect("object paths have a parent");
        std::fs::create_dir_all(parent)?;
        temp.persist(&dest).map_err(|e| e.error)?;
        File::open(parent)?.sync_all()?;
        Ok(dest)
    }

    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
