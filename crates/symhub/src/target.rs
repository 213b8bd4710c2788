//! Where a management command works: directly on a data directory (a running server on it
//! notices the change within a second) or through a server's API with a key. Shared by
//! `symhub package …`, `symhub transactions` and `symhub delete`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use symhub::config::Config;
use symhub::store::SymbolStore;

/// Where the store is: a data directory, or a server.
#[derive(clap::Args)]
pub struct Target {
    /// Work on this data directory (default: storage.data_dir of --config, or ./symhub-data).
    #[arg(long, conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Config file whose storage and package limits apply (local mode).
    #[arg(long, conflicts_with = "url")]
    config: Option<PathBuf>,
    /// Work through this server's API instead (e.g. http://symhub:8080).
    #[arg(long)]
    url: Option<String>,
    /// API key for --url (or set SYMHUB_API_KEY).
    #[arg(long, env = "SYMHUB_API_KEY", hide_env_values = true)]
    key: Option<String>,
}

pub enum Opened {
    /// The store itself, and the config it was opened with (boxed: it is large). A bucket
    /// store needs the Tokio runtime entered by the caller.
    Local {
        store: Arc<SymbolStore>,
        config: Box<Config>,
    },
    Remote(Remote),
}

/// A server's API, reached with a key.
pub struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path` (from `/api/…`) with the key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match self.key.as_str() {
            "" => req,
            key => req.bearer_auth(key),
        }
    }
}

impl Target {
    pub fn open(self) -> anyhow::Result<Opened> {
        if self.url.is_some() && self.key.is_none() {
            bail!("--url needs --key (or SYMHUB_API_KEY)");
        }
        self.open_for_reading()
    }

    /// [`Target::open`] for a command that only reads: a server may take it without a key.
    pub fn open_for_reading(self) -> anyhow::Result<Opened> {
        if let Some(url) = self.url {
            let key = self.key.unwrap_or_default();
            return Ok(Opened::Remote(Remote {
                base: url.trim_end_matches('/').to_owned(),
                key,
                http: reqwest::Client::builder().build()?,
            }));
        }
        let mut config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(d) = self.data_dir {
            config.storage.data_dir = d;
        }
        config.validate()?;
        as_the_owner(&config.storage.data_dir)?;
        let store = Arc::new(SymbolStore::open_with(&config.storage)?);
        Ok(Opened::Local {
            store,
            config: Box::new(config),
        })
    }
}

/// Refuses root on a data dir another user owns (the server's, `DynamicUser=yes` and all):
/// files and directories it made would be root's, which the server cannot read or write
/// in, and it would answer 404 for what root uploaded (re-test pass). A data dir that does
/// not exist yet is root's to make.
fn as_the_owner(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(data_dir) else {
        return Ok(());
    };
    if rustix::process::geteuid().is_root() && meta.uid() != 0 {
        let uid = meta.uid();
        bail!(
            "{} belongs to user {uid}: as root, this command would leave files there that the \
             server, running as that user, cannot read. Run it as that user: \
             sudo -u '#{uid}' symhub …",
            data_dir.display()
        );
    }
    Ok(())
}

/// Sends an API request and returns its JSON answer; an error status becomes an error with
/// the server's message.
pub async fn call(req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{status}: {}", String::from_utf8_lossy(&body)))?;
    if !status.is_success() {
        bail!("{status}: {}", v["message"].as_str().unwrap_or_default());
    }
    Ok(v)
}
