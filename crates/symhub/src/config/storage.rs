//! `[storage]`: where symhub keeps what it writes — a data directory, or a bucket and a
//! PostgreSQL database shared by several instances (`[storage.s3]`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use bytesize::ByteSize;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Everything symhub writes locally lives below this directory.
    pub data_dir: PathBuf,
    /// Where the permanent store (uploads, packages) keeps its files: empty for the data
    /// directory, or `s3://bucket/prefix` for S3-compatible object storage shared by several
    /// instances (which then need `database`).
    pub store: String,
    /// The store's shared metadata database when `store` is a bucket:
    /// `postgres://user:password@host:port/dbname`. Empty: SQLite in the data directory.
    pub database: String,
    /// PEM file of the CA certificates that may sign the database server's certificate, for
    /// URLs with `sslmode=require`. Unset: the public web roots.
    pub database_ca_file: Option<PathBuf>,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./symhub-data"),
            store: String::new(),
            database: String::new(),
            database_ca_file: None,
            s3: S3Config::default(),
        }
    }
}

impl StorageConfig {
    /// `(bucket, prefix)` of an `s3://` store.
    pub fn bucket(&self) -> anyhow::Result<Option<(String, String)>> {
        if self.store.is_empty() {
            return Ok(None);
        }
        let Some(rest) = self.store.strip_prefix("s3://") else {
            bail!(
                "storage.store: `{}` is not `s3://bucket[/prefix]` (leave it empty for the data directory)",
                self.store
            );
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("storage.store: `{}` names no bucket", self.store);
        }
        Ok(Some((
            bucket.to_owned(),
            prefix.trim_matches('/').to_owned(),
        )))
    }
}

/// How to reach the bucket of an `s3://` store. Credentials come from `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), or from the files named here; the
/// region and endpoint may also come from `AWS_REGION` / `AWS_ENDPOINT_URL`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Empty for AWS; `http://127.0.0.1:3900` for Garage, MinIO, Ceph…
    pub endpoint: String,
    /// Empty: `AWS_REGION`, else `us-east-1`. Garage wants its own (`garage`).
    pub region: String,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`. Needed by
    /// most self-hosted services.
    pub path_style: bool,
    /// Files holding the access key id and the secret key (trailing newline ignored).
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Bound of the local disk cache of store objects read from the bucket.
    pub local_cache_size: ByteSize,
    /// Answer hits on store files with `302` to a presigned bucket URL, so bytes flow
    /// straight from storage. Only for clients that follow redirects without sending their
    /// credentials on (dotnet-symbol, symsrv); off by default.
    pub redirect: bool,
    /// How long a presigned URL stays valid.
    #[serde(with = "humantime_serde")]
    pub redirect_ttl: Duration,
    /// A bucket that does not accept a connection within this time is down.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the bucket: for one request with a small body (a head, a list, a
    /// delete, one part of an upload), and for the answer to a download and then each of its
    /// next bytes. A download as a whole may take as long as it needs.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest time one write may take: a put, one 8 MiB part of a bigger file, or the
    /// completion of a multipart upload (which S3 may take a while to answer).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: String::new(),
            path_style: true,
            access_key_id_file: None,
            secret_access_key_file: None,
            local_cache_size: ByteSize::gib(20),
            redirect: false,
            redirect_ttl: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(300),
        }
    }
}
