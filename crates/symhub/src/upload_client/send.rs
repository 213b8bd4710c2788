//! Where `symhub upload` sends files: a symhub server's API (`/api/transactions`,
//! `/api/files/missing`, `PUT /api/files/<name>`), a data directory opened directly (the same
//! ingest code the server runs), or a sym-upload-v2 server (Breakpad files only).

use std::sync::Arc;

use anyhow::Context;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use symhub::upload::files::Held;
use symhub::upload::{UploadError, Uploads};

use super::plan::{sha256_file, Planned, What};
use super::sym_upload_v2;
use crate::target::{Opened, Remote, Target};

/// Bytes read from a file at a time: tokio's default of 4 KiB made the client spend more CPU
/// than the server (bench/upload).
const CHUNK: usize = 256 * 1024;

pub enum Sink {
    Remote(Remote),
    Local(Arc<Uploads>),
    V2(sym_upload_v2::Client),
}

/// What became of one file.
pub enum Outcome {
    /// The server holds its bytes under every key: not sent.
    Held,
    Stored {
        /// The keys it is stored under, `.sym` made of it included (a pair's `.sym` is
        /// reported with each file of the pair: the run's summary counts it once).
        keys: Vec<String>,
        /// Every part was already there with these bytes.
        duplicate: bool,
        /// Why a Breakpad `.sym` could not be made, for each one that was not.
        sym_failed: Vec<String>,
    },
    /// The server would not take it (not a debug file it can key, too large…).
    Refused(String),
    Failed(String),
}

/// Sums up a server's answer for a file (`FileReport` as JSON), members included.
fn outcome_of(report: &Value) -> Outcome {
    fn walk(v: &Value, keys: &mut Vec<String>, stored: &mut bool, sym: &mut Vec<String>) {
        let text = |k: &Value| k.as_str().unwrap_or_default().to_owned();
        for o in v["objects"].as_array().into_iter().flatten() {
            keys.extend(o["keys"].as_array().into_iter().flatten().map(text));
            *stored |= o["result"] == "stored";
        }
        for b in v["breakpad"].as_array().into_iter().flatten() {
            if b["result"] == "failed" {
                sym.push(format!(
                    "{}: {}",
                    b["key"].as_str().unwrap_or(""),
                    b["error"].as_str().unwrap_or("")
                ));
            } else {
                keys.push(text(&b["key"]));
                *stored |= b["result"] == "stored";
            }
        }
        for m in v["members"].as_array().into_iter().flatten() {
            walk(m, keys, stored, sym);
        }
    }
    let (mut keys, mut stored, mut sym_failed) = (Vec::new(), false, Vec::new());
    walk(report, &mut keys, &mut stored, &mut sym_failed);
    Outcome::Stored {
        keys,
        duplicate: !stored,
        sym_failed,
    }
}

fn uploader() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{} (local)", host.trim())
}

/// A server's JSON error message, or the body.
async fn failure(resp: reqwest::Response) -> (reqwest::StatusCode, String) {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    (status, format!("{status}: {message}"))
}

impl Sink {
    pub fn open(target: Target, v2: bool) -> anyhow::Result<Self> {
        Ok(match target.open()? {
            Opened::Remote(remote) if v2 => Sink::V2(sym_upload_v2::Client {
                http: remote.http().clone(),
                base: remote.base().to_owned(),
                key: remote.key().to_owned(),
            }),
            Opened::Remote(remote) => Sink::Remote(remote),
            Opened::Local { .. } if v2 => anyhow::bail!("--sym-upload-v2 needs --url"),
            Opened::Local { store, config } => Sink::Local(Arc::new(Uploads::new(store, &config))),
        })
    }

    /// Opens the run's transaction (none with sym-upload-v2, which has no such thing).
    pub async fn begin(
        &self,
        product: &str,
        version: &str,
        comment: &str,
        expires: Option<&str>,
    ) -> anyhow::Result<Option<i64>> {
        let expires_in =
            symhub::store::retention::parse_expiry(expires).map_err(anyhow::Error::msg)?;
        match self {
            Sink::V2(_) => Ok(None),
            Sink::Local(uploads) => {
                let (store, p, v, c) = (
                    uploads.store().clone(),
                    product.to_owned(),
                    version.to_owned(),
                    comment.to_owned(),
                );
                let expires_at = symhub::store::retention::expires_at(expires_in);
                let id = tokio::task::spawn_blocking(move || {
                    store.begin_transaction_expiring(&p, &v, &c, &uploader(), expires_at)
                })
                .await??;
                Ok(Some(id))
            }
            Sink::Remote(remote) => {
                let resp = remote
                    .request(reqwest::Method::POST, "/api/transactions")
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(
                        json!({
                            "product": product, "version": version, "comment": comment,
                            "expires": expires,
                        })
                        .to_string(),
                    )
                    .send()
                    .await
                    .context("cannot reach the server")?;
                if !resp.status().is_success() {
                    anyhow::bail!("cannot open a transaction: {}", failure(resp).await.1);
                }
                let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
                Ok(Some(
                    v["id"]
                        .as_i64()
                        .context("the server's transaction has no id")?,
                ))
            }
        }
    }

    /// For each planned file, whether the server holds its bytes under every key (and so
    /// recorded it in `transaction`).
    pub async fn held(
        &self,
        planned: &[Planned],
        transaction: Option<i64>,
    ) -> anyhow::Result<Vec<bool>> {
        let mut asked = Vec::new();
        let mut files = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            let Some(keys) = p.whole_file_keys() else {
                continue;
            };
            let path = p.path.clone();
            let sha256 = tokio::task::spawn_blocking(move || sha256_file(&path)).await??;
            asked.push(i);
            files.push(Held {
                sha256,
                keys: keys.iter().map(|k| k.to_string()).collect(),
                derived: p.derived_keys().iter().map(|k| k.to_string()).collect(),
            });
        }
        let mut held = vec![false; planned.len()];
        if let Sink::V2(_) = self {
            return Ok(held);
        }
        for (chunk_at, chunk) in files.chunks(1000).enumerate() {
            let missing: Vec<usize> = match self {
                Sink::Local(uploads) => uploads.missing(chunk.to_vec(), transaction).await?,
                Sink::Remote(remote) => {
                    let q = transaction.map_or(String::new(), |t| format!("?transaction={t}"));
                    let resp = remote
                        .request(reqwest::Method::POST, &format!("/api/files/missing{q}"))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(json!({ "files": chunk }).to_string())
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        anyhow::bail!(
                            "cannot ask which files the server has: {}",
                            failure(resp).await.1
                        );
                    }
                    let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
                    serde_json::from_value(v["missing"].clone())?
                }
                Sink::V2(_) => unreachable!(),
            };
            for (j, _) in chunk.iter().enumerate() {
                if !missing.contains(&j) {
                    held[asked[chunk_at * 1000 + j]] = true;
                }
            }
        }
        Ok(held)
    }

    pub async fn send(&self, p: &Planned, transaction: Option<i64>) -> Outcome {
        match self.try_send(p, transaction).await {
            Ok(o) => o,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    async fn try_send(&self, p: &Planned, transaction: Option<i64>) -> anyhow::Result<Outcome> {
        match self {
            Sink::V2(client) => {
                let What::Breakpad(header) = &p.what else {
                    return Ok(Outcome::Refused(
                        "sym-upload-v2 takes Breakpad .sym files only".into(),
                    ));
                };
                // Its MODULE line's key: two copies of one `.sym` are one key.
                let key = header
                    .key()
                    .map_or_else(|_| p.path.display().to_string(), |k| k.to_string());
                Ok(match client.upload(&p.path, false).await? {
                    sym_upload_v2::Done::Skipped => Outcome::Held,
                    sym_upload_v2::Done::Duplicate => Outcome::Stored {
                        keys: vec![key.clone()],
                        duplicate: true,
                        sym_failed: vec![],
                    },
                    sym_upload_v2::Done::Uploaded => Outcome::Stored {
                        keys: vec![key.clone()],
                        duplicate: false,
                        sym_failed: vec![],
                    },
                })
            }
            Sink::Local(uploads) => {
                let file = tokio::fs::File::open(&p.path).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, CHUNK);
                let received = uploads.receive(stream, Some(p.size)).await?;
                let origin =
                    symhub::store::symbols::Origin::new(transaction, Some(uploader().into()));
                match uploads.ingest_file(received, &p.name, origin).await {
                    Ok(report) => Ok(outcome_of(&serde_json::to_value(&report)?)),
                    Err(
                        e @ (UploadError::NotDebugFile(_)
                        | UploadError::NotSym(_)
                        | UploadError::TooLarge(_)),
                    ) => Ok(Outcome::Refused(e.to_string())),
                    Err(e) => Err(e.into()),
                }
            }
            Sink::Remote(remote) => {
                let name = utf8_percent_encode(&p.name, NON_ALPHANUMERIC);
                let q = transaction.map_or(String::new(), |t| format!("?transaction={t}"));
                let file = tokio::fs::File::open(&p.path).await?;
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    file, CHUNK,
                ));
                let resp = remote
                    .request(reqwest::Method::PUT, &format!("/api/files/{name}{q}"))
                    .header(reqwest::header::CONTENT_LENGTH, p.size)
                    .body(body)
                    .send()
                    .await?;
                if resp.status().is_success() {
                    return Ok(outcome_of(&serde_json::from_slice(&resp.bytes().await?)?));
                }
                let (status, message) = failure(resp).await;
                Ok(if status.is_client_error() {
                    Outcome::Refused(message)
                } else {
                    Outcome::Failed(message)
                })
            }
        }
    }
}
