//! Where the bytes of a stored file are, for a reader in this process: the one place that
//! knows whether blobs live in a local directory or in a bucket. Callers ask "where?" and get
//! a local path, a stream to copy from the bucket, or a presigned URL; none of them branches
//! on the kind of storage.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::objects::{Finished, TempObject};
use super::symbols::SymbolStore;

/// Where a stored blob can be read.
pub enum BlobLocation {
    /// On local disk: the store's own objects, or this instance's copy of a bucket blob.
    Local(PathBuf),
    /// Only in the bucket: copy it with [`SymbolStore::read_remote`] into a
    /// [`SymbolStore::writer`], then [`SymbolStore::adopt_copy`].
    Remote,
    /// Answer with a redirect to this presigned bucket URL (`storage.s3.redirect`).
    Url(String),
}

impl SymbolStore {
    /// Whether a lookup (`get`, `by_code_id`, `executable_by_build_id`, and `locate`
    /// without a redirect) reads only this machine's files: SQLite's readers, which never
    /// wait for a writer, and the local objects directory. Then it takes microseconds and
    /// may run on a connection's worker; with a bucket or PostgreSQL it goes over the
    /// network and belongs on the blocking pool.
    pub fn lookups_are_local(&self) -> bool {
        !self.is_shared() && !self.db.is_postgres()
    }

    /// Where blob `sha256` is. `redirect`: whether a presigned URL is wanted when the store
    /// is configured to answer hits with redirects. Blocking (presigning may call the
    /// credentials provider).
    pub fn locate(&self, sha256: &str, redirect: bool) -> BlobLocation {
        let Some(bucket) = self.blobs.bucket() else {
            return BlobLocation::Local(self.blobs.dir().path(sha256));
        };
        if redirect {
            if let Some(url) = self.blobs.redirect_url(sha256) {
                return BlobLocation::Url(url);
            }
        }
        match bucket.local_copy(sha256) {
            Some(path) => BlobLocation::Local(path),
            None => BlobLocation::Remote,
        }
    }

    /// Whether hits of stored files are answered with presigned bucket URLs.
    pub fn redirects_hits(&self) -> bool {
        self.blobs.redirect_url_enabled()
    }

    /// The bytes of a remote blob, as they come from the bucket.
    pub async fn read_remote(
        &self,
        sha256: &str,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        match self.blobs.bucket() {
            Some(bucket) => bucket.read_blob(sha256).await,
            None => Err(io::Error::other("a local store has no remote blobs")),
        }
    }

    /// A temp file for bytes on their way into the store (an upload, a package entry) or
    /// into this instance's copies of bucket blobs.
    pub fn writer(&self) -> io::Result<TempObject> {
        self.blobs.dir().writer()
    }

    /// Whether blob `sha256` is stored.
    pub fn has_blob(&self, sha256: &str) -> io::Result<bool> {
        self.blobs.exists(sha256)
    }

    /// Stores a finished temp file as blob `sha256` (renamed into place, or sent to the
    /// bucket with a local copy kept).
    pub fn put_blob(&self, blob: Finished, sha256: &str) -> io::Result<()> {
        self.blobs.put(&blob.file, blob.temp, sha256)
    }

    /// Keeps a whole, checked copy of remote blob `sha256` among this instance's local copies
    /// and returns its path.
    pub fn adopt_copy(&self, copy: Finished, sha256: &str) -> io::Result<PathBuf> {
        match self.blobs.bucket() {
            Some(bucket) => bucket.adopt(&copy.file, copy.temp, sha256, copy.size),
            None => Err(io::Error::other("a local store keeps no copies")),
        }
    }

    /// Names the store in messages (`s3://bucket/prefix` or the local directory).
    pub fn describe(&self) -> String {
        match self.blobs.bucket() {
            Some(bucket) => bucket.describe().to_owned(),
            None => "the local store".to_owned(),
        }
    }
}
