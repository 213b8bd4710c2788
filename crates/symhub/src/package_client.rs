//! `symhub package …`: manage SSQP packages either directly in a data directory (a running
//! server notices within a second) or through a server's API with a key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use symhub::config::Config;
use symhub::package::{Packages, Progress};
use symhub::store::SymbolStore;

#[derive(Subcommand)]
pub enum PackageCommand {
    /// Add packages (zip with a root symbol_index.json, or .snupkg); one with the same name
    /// is replaced atomically.
    Add {
        /// Package files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Package name (default: the file name without its extension). One file only.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List packages: name, size, keys, added-at.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Show a package and its keys.
    Show {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a package; keys it shared with another package fall back to that one.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the packages are: a data directory, or a server.
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

enum Mode {
    Local(Packages),
    Remote {
        base: String,
        key: String,
        http: reqwest::Client,
    },
}

impl Target {
    fn open(self) -> anyhow::Result<Mode> {
        if let Some(url) = self.url {
            let key = self.key.context("--url needs --key (or SYMHUB_API_KEY)")?;
            return Ok(Mode::Remote {
                base: url.trim_end_matches('/').to_owned(),
                key,
                http: reqwest::Client::builder().build()?,
            });
        }
        let mut config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(d) = self.data_dir {
            config.storage.data_dir = d;
        }
        config.validate()?;
        let store = Arc::new(SymbolStore::open_with(&config.storage)?);
        let packages = Packages::new(store, config.packages.clone());
        Ok(Mode::Local(packages))
    }
}

fn default_name(file: &Path) -> anyhow::Result<String> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("cannot name a package after {}", file.display()))?;
    Ok(stem.to_owned())
}

/// Prints progress to stderr at most twice a second.
fn progress_printer(label: String) -> impl Fn(Progress) {
    let last = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    move |p: Progress| {
        let mut last = last.lock().unwrap();
        if last.elapsed() >= Duration::from_millis(500) || p.entries_done == p.entries_total {
            *last = Instant::now();
            eprint!(
                "\r{label}: {}/{} files, {} MiB unpacked   ",
                p.entries_done,
                p.entries_total,
                p.bytes_done >> 20
            );
            let _ = std::io::stderr().flush();
        }
    }
}

async fn call(req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
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

pub fn run(command: PackageCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    // A bucket store sends its requests through this runtime.
    let _runtime = runtime.enter();
    match command {
        PackageCommand::Add {
            files,
            name,
            target,
        } => {
            if name.is_some() && files.len() > 1 {
                bail!("--name names one package; give one file");
            }
            let mode = target.open()?;
            for file in &files {
                let name = match &name {
                    Some(n) => n.clone(),
                    None => default_name(file)?,
                };
                let started = Instant::now();
                let summary = match &mode {
                    Mode::Local(p) => {
                        let done = p.ingest_file(&name, file, &progress_printer(name.clone()));
                        eprintln!();
                        serde_json::to_value(done.with_context(|| format!("{}", file.display()))?)?
                    }
                    Mode::Remote { base, key, http } => runtime.block_on(async {
                        let size = std::fs::metadata(file)?.len();
                        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
                        let counter = sent.clone();
                        let label = name.clone();
                        let stream = futures_util::StreamExt::map(
                            tokio_util::io::ReaderStream::new(tokio::fs::File::open(file).await?),
                            move |chunk| {
                                if let Ok(c) = &chunk {
                                    let n = counter.fetch_add(
                                        c.len() as u64,
                                        std::sync::atomic::Ordering::Relaxed,
                                    );
                                    eprint!(
                                        "\r{label}: {} of {} MiB sent   ",
                                        (n + c.len() as u64) >> 20,
                                        size >> 20
                                    );
                                }
                                chunk
                            },
                        );
                        let v = call(
                            http.put(format!("{base}/api/packages/{name}"))
                                .bearer_auth(key)
                                .header("content-length", size)
                                .body(reqwest::Body::wrap_stream(stream)),
                        )
                        .await;
                        eprintln!();
                        v.with_context(|| format!("{}", file.display()))
                    })?,
                };
                println!(
                    "{name}: {} keys ({} derived from portable PDBs), {} blobs, {} bytes{} in {:.1}s",
                    summary["keys"],
                    summary["derived_keys"],
                    summary["blobs"],
                    summary["blob_bytes"],
                    if summary["replaced"] == true { ", replaced the previous version" } else { "" },
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        PackageCommand::List { target } => {
            let list = match target.open()? {
                Mode::Local(p) => serde_json::to_value(p.list()?)?,
                Mode::Remote { base, key, http } => runtime.block_on(call(
                    http.get(format!("{base}/api/packages")).bearer_auth(key),
                ))?["packages"]
                    .clone(),
            };
            println!("{:<40} {:>12} {:>10}  added", "name", "size", "keys");
            for p in list.as_array().into_iter().flatten() {
                println!(
                    "{:<40} {:>12} {:>10}  {}",
                    p["name"].as_str().unwrap_or_default(),
                    p["size"],
                    p["key_count"],
                    p["added_at"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        PackageCommand::Show { name, target } => {
            let mode = target.open()?;
            let mut after = String::new();
            loop {
                let page = match &mode {
                    Mode::Local(p) => {
                        let Some((info, keys)) = p.show(&name, &after, 1000)? else {
                            bail!("no package `{name}`");
                        };
                        if after.is_empty() {
                            println!("{}", serde_json::to_string_pretty(&info)?);
                        }
                        keys.into_iter()
                            .map(|k| (k.key, k.display, k.size))
                            .collect::<Vec<_>>()
                    }
                    Mode::Remote { base, key, http } => {
                        let v = runtime.block_on(call(
                            http.get(format!("{base}/api/packages/{name}"))
                                .query(&[("after", after.as_str())])
                                .bearer_auth(key),
                        ))?;
                        if after.is_empty() {
                            println!("{}", serde_json::to_string_pretty(&v["package"])?);
                        }
                        v["keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|k| {
                                let d = k["key"].as_str().unwrap_or_default().to_owned();
                                (d.to_lowercase(), d, k["size"].as_u64().unwrap_or(0))
                            })
                            .collect()
                    }
                };
                for (_, display, size) in &page {
                    println!("{display}\t{size}");
                }
                match page.last() {
                    Some((norm, _, _)) if page.len() == 1000 => after = norm.clone(),
                    _ => break,
                }
            }
            Ok(())
        }
        PackageCommand::Remove { name, target } => {
            match target.open()? {
                Mode::Local(p) => {
                    if !p.remove(&name)? {
                        bail!("no package `{name}`");
                    }
                }
                Mode::Remote { base, key, http } => {
                    runtime.block_on(call(
                        http.delete(format!("{base}/api/packages/{name}"))
                            .bearer_auth(key),
                    ))?;
                }
            }
            println!("removed {name}");
            Ok(())
        }
    }
}
