//! `symhub upload --sym-upload-v2`: Breakpad `.sym` files sent with Google's sym-upload-v2
//! protocol, for servers that speak only that: `checkStatus` first (skipping what is
//! there), `uploads:create`, the file streamed with `PUT`, `:complete`.

use std::path::Path;

use anyhow::{bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use symhub_core::breakpad::{parse_sym_header, SymHeader, HEADER_LIMIT};

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

pub enum Done {
    Uploaded,
    Duplicate,
    Skipped,
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
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

    pub async fn upload(&self, path: &Path, force: bool) -> anyhow::Result<Done> {
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
