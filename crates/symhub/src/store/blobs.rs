//! Where the store's content-addressed blobs live: a local [`ObjectDir`] (the default), or
//! an S3-compatible bucket shared by several instances, with a bounded local disk cache of
//! the blobs this instance served or wrote.
//!
//! Bucket layout under the configured prefix: `blobs/<sha256>` (immutable, named by their
//! content, so a blob is either absent or whole) and `uploads/<upload key>` (bodies of v2
//! upload sessions waiting for `:complete`, which may arrive at another instance).
//!
//! Every call blocks: async callers go through `spawn_blocking`, and bucket requests run on
//! the server's runtime through its handle.

use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tempfile::TempPath;

use super::objects::ObjectDir;
use crate::config::StorageConfig;

/// Bucket requests are sent in parts of this size; also the most a bucket write holds in
/// memory.
const PART: usize = 8 * 1024 * 1024;

pub enum Blobs {
    Local(ObjectDir),
    Bucket(Box<Bucket>),
}

pub struct Bucket {
    /// For requests with small bodies (heads, lists, deletes), each bounded as a whole by
    /// `storage.s3.timeout`.
    store: Arc<object_store::aws::AmazonS3>,
    /// For writes of blobs and upload bodies: one request (a put, one 8 MiB part, the
    /// completion of a multipart upload) bounded by `storage.s3.write_timeout`.
    writer: Arc<object_store::aws::AmazonS3>,
    /// For blob downloads: no bound on the whole request (a multi-GB blob takes as long as
    /// it takes), but no answer or no next bytes within `idle` fails it.
    reader: Arc<object_store::aws::AmazonS3>,
    idle: Duration,
    prefix: String,
    /// Local copies of blobs, bounded by `local_cache_size`, least recently used out.
    hot: ObjectDir,
    hot_index: moka::sync::Cache<String, u64>,
    rt: tokio::runtime::Handle,
    down: Arc<AtomicBool>,
    redirect_ttl: Option<Duration>,
    /// What to tell an operator when the bucket fails.
    describe: String,
}

/// Keeps a bucket's health flag, saying so when it flips.
fn mark(down: &AtomicBool, describe: &str, what: &str, reached: bool) {
    if down.swap(!reached, Ordering::Relaxed) == reached {
        if reached {
            tracing::info!(store = %describe, "bucket reachable again");
        } else {
            tracing::error!(store = %describe, "bucket unreachable ({what})");
        }
    }
}

fn stalled(idle: Duration) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: format!("no answer for {idle:?} (storage.s3.timeout)").into(),
    }
}

fn io_err(what: &str, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(super::Unavailable(format!("{what}: {e}"))),
    }
}

impl Blobs {
    /// The blobs of the store rooted at `local_root` (`<data_dir>/store`).
    pub fn open(local_root: &FsPath, storage: &StorageConfig) -> anyhow::Result<Self> {
        let Some((bucket, prefix)) = storage.bucket()? else {
            return Ok(Blobs::Local(ObjectDir::open(local_root)?));
        };
        Ok(Blobs::Bucket(Box::new(Bucket::open(
            local_root, storage, &bucket, &prefix,
        )?)))
    }

    pub fn bucket(&self) -> Option<&Bucket> {
        match self {
            Blobs::Bucket(b) => Some(b),
            Blobs::Local(_) => None,
        }
    }

    /// Where files being received are written (always local).
    pub fn dir(&self) -> &ObjectDir {
        match self {
            Blobs::Local(d) => d,
            Blobs::Bucket(b) => &b.hot,
        }
    }

    pub fn exists(&self, sha256: &str) -> io::Result<bool> {
        match self {
            Blobs::Local(d) => Ok(d.path(sha256).exists()),
            Blobs::Bucket(b) => b.exists(&b.blob(sha256)),
        }
    }

    /// Makes a fully written, checked temp file the blob `sha256`.
    pub fn put(&self, file: &std::fs::File, temp: TempPath, sha256: &str) -> io::Result<()> {
        match self {
            Blobs::Local(d) => d.commit(file, temp, sha256).map(drop),
            Blobs::Bucket(b) => b.put(file, temp, sha256),
        }
    }

    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match self {
            Blobs::Local(d) => d.remove(sha256),
            Blobs::Bucket(b) => b.remove(sha256),
        }
    }

    /// A presigned URL of the blob, when the store answers hits with redirects.
    pub fn redirect_url_enabled(&self) -> bool {
        self.bucket().is_some_and(|b| b.redirect_ttl.is_some())
    }

    pub fn redirect_url(&self, sha256: &str) -> Option<String> {
        self.bucket()?.presigned(sha256)
    }
}

impl Bucket {
    fn open(
        local_root: &FsPath,
        storage: &StorageConfig,
        bucket: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let s3 = &storage.s3;
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!s3.path_style)
            // A down bucket must fail requests fast (404 / 503), not after minutes of retries.
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
            });
        if !s3.endpoint.is_empty() {
            b = b.with_endpoint(&s3.endpoint);
        }
        if !s3.region.is_empty() {
            b = b.with_region(&s3.region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        let read = |p: &PathBuf, what: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim_end().to_owned())
                .with_context(|| format!("cannot read storage.s3.{what} {}", p.display()))
        };
        if let Some(p) = &s3.access_key_id_file {
            b = b.with_access_key_id(read(p, "access_key_id_file")?);
        }
        if let Some(p) = &s3.secret_access_key_file {
            b = b.with_secret_access_key(read(p, "secret_access_key_file")?);
        }
        // Client options are set whole per client, so they carry plain-HTTP permission too.
        let options = object_store::ClientOptions::new()
            .with_connect_timeout(s3.connect_timeout)
            .with_allow_http(s3.endpoint.starts_with("http://"));
        let build = |options: object_store::ClientOptions| {
            b.clone()
                .with_client_options(options)
                .build()
                .with_context(|| {
                    format!(
                        "cannot set up the bucket of storage.store {}: check storage.s3 and the \
                     AWS_* environment variables",
                        storage.store
                    )
                })
        };
        let store = build(options.clone().with_timeout(s3.timeout))?;
        let writer = build(options.clone().with_timeout(s3.write_timeout))?;
        let reader = build(options.with_timeout_disabled())?;
        // The local copies start empty: they are a cache, and not indexing leftovers keeps
        // start-up free of scans.
        let hot_root = local_root.join("bucket-cache");
        if hot_root.exists() {
            std::fs::remove_dir_all(&hot_root)
                .with_context(|| format!("cannot clear {}", hot_root.display()))?;
        }
        let hot = ObjectDir::open(&hot_root)?;
        let evict_dir = hot.clone();
        let hot_index = moka::sync::Cache::builder()
            .max_capacity(s3.local_cache_size.as_u64())
            .weigher(|_: &String, size: &u64| (*size).min(u32::MAX as u64) as u32)
            .eviction_listener(move |sha: Arc<String>, _, cause| {
                if cause != moka::notification::RemovalCause::Replaced {
                    let _ = evict_dir.remove(&sha);
                }
            })
            .build();
        Ok(Self {
            store: Arc::new(store),
            reader: Arc::new(reader),
            writer: Arc::new(writer),
            idle: s3.timeout,
            prefix: prefix.to_owned(),
            hot,
            hot_index,
            rt: tokio::runtime::Handle::current(),
            down: Arc::default(),
            redirect_ttl: s3.redirect.then_some(s3.redirect_ttl),
            describe: storage.store.clone(),
        })
    }

    fn path(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn blob(&self, sha256: &str) -> Path {
        self.path(&format!("blobs/{sha256}"))
    }

    /// Where blob `sha256` is in the bucket.
    pub fn blob_path(&self, sha256: &str) -> Path {
        self.blob(sha256)
    }

    pub fn upload_path(&self, upload_key: &str) -> Path {
        self.path(&format!("uploads/{upload_key}"))
    }

    /// Whether the last request to the bucket failed to reach it.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Runs a bucket request, keeping the health flag.
    fn run<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> io::Result<T> {
        let r = self.rt.block_on(f);
        self.note(what, r)
    }

    /// Keeps the health flag from a request's outcome and names the bucket in its error.
    fn note<T>(&self, what: &str, r: object_store::Result<T>) -> io::Result<T> {
        let reached = !matches!(
            &r,
            Err(e) if !matches!(e, object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. })
        );
        mark(&self.down, &self.describe, what, reached);
        r.map_err(|e| io_err(&format!("bucket {} ({what})", self.describe), e))
    }

    /// Lets a caller find out whether the bucket is back (healthz probes through this).
    pub fn probe(&self) -> bool {
        let path = self.path("");
        let store = self.store.clone();
        self.run("probe", async move {
            let mut list = store.list(Some(&path));
            match list.next().await {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        })
        .is_ok()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        match self.run("head", self.store.head(path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a local file to `path`, in parts when it is big, never holding more than one
    /// part in memory.
    pub fn upload_file(&self, file: &std::fs::File, path: &Path) -> io::Result<()> {
        let size = file.metadata()?.len();
        let mut reader = io::BufReader::new(file.try_clone()?);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(0))?;
        if size <= PART as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            reader.read_to_end(&mut buf)?;
            return self
                .run("put", self.writer.put(path, PutPayload::from(buf)))
                .map(drop);
        }
        let store = self.writer.clone();
        let path = path.clone();
        self.run("multipart put", async move {
            let upload = store.put_multipart(&path).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            loop {
                // Reads block briefly on a local file; this future runs on a blocking
                // thread through `block_on`.
                let n = reader
                    .read(&mut buf)
                    .map_err(|e| object_store::Error::Generic {
                        store: "local",
                        source: Box::new(e),
                    })?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(2).await?;
                w.write(&buf[..n]);
            }
            w.finish().await.map(drop)
        })
    }

    /// The bytes of `path` as they arrive. Waiting for the answer, and then for each next
    /// chunk, is bounded by `storage.s3.timeout`: a stalled bucket fails the read rather than
    /// holding its clients.
    pub async fn read(&self, path: &Path) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let idle = self.idle;
        let what = format!("bucket {} (get {path})", self.describe);
        let answer = tokio::time::timeout(idle, self.reader.get(path))
            .await
            .unwrap_or_else(|_| Err(stalled(idle)));
        let stream = self.note("get", answer)?.into_stream();
        let (down, describe) = (self.down.clone(), self.describe.clone());
        Ok(futures_util::stream::unfold(Some(stream), move |stream| {
            let (what, down, describe) = (what.clone(), down.clone(), describe.clone());
            async move {
                let mut stream = stream?;
                let next = tokio::time::timeout(idle, stream.next())
                    .await
                    .unwrap_or_else(|_| Some(Err(stalled(idle))))?;
                Some(match next {
                    Ok(chunk) => (Ok(chunk), Some(stream)),
                    // An error ends the stream, and says the bucket is in trouble (health
                    // then probes until it answers again).
                    Err(e) => {
                        mark(&down, &describe, "get body", false);
                        (Err(io_err(&what, e)), None)
                    }
                })
            }
        })
        .boxed())
    }

    /// The blob's bytes as they arrive (see [`Bucket::read`]).
    pub async fn read_blob(
        &self,
        sha256: &str,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        self.read(&self.blob(sha256)).await
    }

    /// Downloads `path` into a new local temp file, checking its length (and hash when
    /// given).
    pub fn download(&self, path: &Path, size: Option<u64>) -> io::Result<super::objects::Finished> {
        let mut out = self.hot.writer()?;
        self.rt.block_on(async {
            let mut stream = self.read(path).await?;
            while let Some(chunk) = stream.next().await {
                // A local write blocks briefly; this runs on a blocking thread.
                out.write(&chunk?)?;
            }
            Ok::<_, io::Error>(())
        })?;
        let done = out.finish()?;
        let written = done.size;
        if size.is_some_and(|s| s != written) {
            return Err(io::Error::other(super::Unavailable(format!(
                "bucket {}: {path} has {written} bytes, {} expected",
                self.describe,
                size.unwrap_or_default()
            ))));
        }
        Ok(done)
    }

    /// Sends a local file as blob `sha256` (`symhub migrate`), without keeping a copy.
    pub fn put_blob_file(&self, file: &std::fs::File, sha256: &str) -> io::Result<()> {
        self.upload_file(file, &self.blob(sha256))
    }

    pub fn delete(&self, path: &Path) -> io::Result<()> {
        match self.run("delete", self.store.delete(path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn put(&self, file: &std::fs::File, temp: TempPath, sha256: &str) -> io::Result<()> {
        self.upload_file(file, &self.blob(sha256))?;
        // The writer keeps a local copy: it is often read soon after (a client checking its
        // upload, a crash processor).
        let size = file.metadata()?.len();
        self.hot.commit(file, temp, sha256)?;
        self.hot_index.insert(sha256.to_owned(), size);
        Ok(())
    }

    fn remove(&self, sha256: &str) -> io::Result<()> {
        self.delete(&self.blob(sha256))?;
        self.hot_index.invalidate(sha256);
        self.hot.remove(sha256)
    }

    /// This instance's local copy of a blob, if it has one.
    pub fn local_copy(&self, sha256: &str) -> Option<PathBuf> {
        self.hot_index.get(sha256)?;
        let local = self.hot.path(sha256);
        local.exists().then_some(local)
    }

    /// Makes a downloaded, checked temp file this instance's local copy of the blob.
    pub fn adopt(
        &self,
        file: &std::fs::File,
        temp: TempPath,
        sha256: &str,
        size: u64,
    ) -> io::Result<PathBuf> {
        self.hot.commit(file, temp, sha256)?;
        self.hot_index.insert(sha256.to_owned(), size);
        Ok(self.hot.path(sha256))
    }

    fn presigned(&self, sha256: &str) -> Option<String> {
        use object_store::signer::Signer;
        let ttl = self.redirect_ttl?;
        let path = self.blob(sha256);
        let store = self.store.clone();
        self.rt
            .block_on(async move { store.signed_url(http::Method::GET, &path, ttl).await })
            .ok()
            .map(|u| u.to_string())
    }

    /// Keys below `rel` (relative to the prefix), for `symhub migrate` to skip what is there.
    pub fn list_names(&self, rel: &str) -> io::Result<std::collections::HashSet<String>> {
        let path = self.path(rel);
        let store = self.store.clone();
        self.run("list", async move {
            let mut out = std::collections::HashSet::new();
            let mut list = store.list(Some(&path));
            while let Some(m) = list.next().await {
                if let Some(name) = m?.location.filename() {
                    out.insert(name.to_owned());
                }
            }
            Ok(out)
        })
    }
}
