//! `symhub upload`: a sym-upload-v2 client for symhub (or any server of that protocol, such
//! as Google's). Finds `.sym` files, asks `checkStatus` first and skips what is there,
//! streams each file with `PUT`, and prints one line per file and a summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use symhub_core::breakpad::{parse_sym_header, SymHeader, HEADER_LIMIT};

#[derive(clap::Args)]
pub struct UploadArgs {
    /// The server's base URL, as given to `sym_upload` (e.g. http://symhub:8080).
    #[arg(long)]
    url: String,
    /// API key (or set SYMHUB_API_KEY).
    #[arg(long, env = "SYMHUB_API_KEY", hide_env_values = true)]
    key: String,
    /// Upload even when the server says it has the module.
    #[arg(long)]
    force: bool,
    /// `.sym` files, or directories searched recursively for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn find_sym_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x.eq_ignore_ascii_case("sym")) {
                find_sym_files(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn read_header(path: &Path) -> anyhow::Result<SymHeader> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(HEADER_LIMIT as u64)
        .read_to_end(&mut head)?;
    Ok(parse_sym_header(&head)?)
}

/// Pulls `"name": "value"` out of a JSON answer.
fn field(body: &[u8], name: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(body).with_context(|| {
        format!(
            "the server did not answer JSON: {}",
            String::from_utf8_lossy(body)
        )
    })?;
    v.get(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .with_context(|| format!("the server's answer has no `{name}`: {v}"))
}

enum Done {
    Uploaded,
    Duplicate,
    Skipped,
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn url(&self, path: &str) -> String {
        let key = utf8_percent_encode(&self.key, NON_ALPHANUMERIC);
        format!("{}/v1/{path}?key={key}", self.base)
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<bytes::Bytes> {
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{status}: {message}");
        }
        Ok(body)
    }

    async fn upload(&self, path: &Path, force: bool) -> anyhow::Result<Done> {
        let header = read_header(path)?;
        let file = utf8_percent_encode(&header.debug_file, NON_ALPHANUMERIC).to_string();
        if !force {
            let body = self
                .call(
                    self.http
                        .get(self.url(&format!("symbols/{file}/{}:checkStatus", header.debug_id))),
                )
                .await?;
            if field(&body, "status")? == "FOUND" {
                return Ok(Done::Skipped);
            }
        }
        let body = self
            .call(self.http.post(self.url("uploads:create")))
            .await?;
        let (upload_url, upload_key) = (field(&body, "uploadUrl")?, field(&body, "uploadKey")?);
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::open(path).await?);
        let resp = self
            .http
            .put(&upload_url)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await?;
        if resp.status() != reqwest::StatusCode::OK {
            bail!("PUT {upload_url}: {}", resp.status());
        }
        let complete = serde_json::json!({
            "symbol_id": { "debug_file": header.debug_file, "debug_id": header.debug_id },
            "symbol_upload_type": "BREAKPAD",
        });
        let body = self
            .call(
                self.http
                    .post(self.url(&format!("uploads/{upload_key}:complete")))
                    .header("content-type", "application/json")
                    .body(complete.to_string()),
            )
            .await?;
        Ok(match field(&body, "result")?.as_str() {
            "DUPLICATE_DATA" => Done::Duplicate,
            _ => Done::Uploaded,
        })
    }
}

pub fn run(args: UploadArgs) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in &args.paths {
        find_sym_files(p, &mut files)?;
    }
    if files.is_empty() {
        bail!("no .sym files found in {:?}", args.paths);
    }
    let client = Client {
        http: reqwest::Client::builder()
            .user_agent(concat!("symhub-upload/", env!("CARGO_PKG_VERSION")))
            .build()?,
        base: args.url.trim_end_matches('/').to_owned(),
        key: args.key,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (mut uploaded, mut skipped, mut failed) = (0, 0, 0);
    let total = files.len();
    for (i, path) in files.iter().enumerate() {
        let n = i + 1;
        match runtime.block_on(client.upload(path, args.force)) {
            Ok(Done::Uploaded) => {
                uploaded += 1;
                println!("[{n}/{total}] uploaded  {}", path.display());
            }
            Ok(Done::Duplicate) => {
                skipped += 1;
                println!("[{n}/{total}] identical {}", path.display());
            }
            Ok(Done::Skipped) => {
                skipped += 1;
                println!("[{n}/{total}] present   {}", path.display());
            }
            Err(e) => {
                failed += 1;
                println!("[{n}/{total}] FAILED    {}: {e:#}", path.display());
            }
        }
    }
    println!("{uploaded} uploaded, {skipped} skipped (already there), {failed} failed");
    if failed > 0 {
        bail!("{failed} of {total} uploads failed");
    }
    Ok(())
}
