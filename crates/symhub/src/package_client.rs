//! `symhub package …`: manage SSQP packages either directly in a data directory (a running
//! server notices within a second) or through a server's API with a key.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use symhub::package::{Packages, Progress};

use crate::target::{call, Opened, Remote, Target};

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

enum Mode {
    Local(Packages),
    Remote(Remote),
}

fn open(target: Target) -> anyhow::Result<Mode> {
    Ok(match target.open()? {
        Opened::Local { store, config } => Mode::Local(Packages::new(store, config.packages)),
        Opened::Remote(r) => Mode::Remote(r),
    })
}

fn default_name(file: &Path) -> anyhow::Result<String> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("cannot name a package after {}", file.display()))?;
    Ok(stem.to_owned())
}

/// A progress bar on stderr, drawn only when stderr is a terminal (indicatif hides it
/// otherwise), so a log or a pipe gets the summary lines alone.
fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    bar
}

/// Follows an unpacking's [`Progress`] on `bar` (entries; the message says the bytes).
fn unpacking(bar: &ProgressBar) -> impl Fn(Progress) + '_ {
    move |p: Progress| {
        bar.set_length(p.entries_total as u64);
        bar.set_position(p.entries_done as u64);
        bar.set_message(format!("{} MiB unpacked", p.bytes_done >> 20));
    }
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
            let mode = open(target)?;
            for file in &files {
                let name = match &name {
                    Some(n) => n.clone(),
                    None => default_name(file)?,
                };
                let started = Instant::now();
                let summary = match &mode {
                    Mode::Local(p) => {
                        let bar = progress_bar(0, "{prefix}: [{elapsed_precise}] {wide_bar} {pos}/{len} files, {msg}");
                        bar.set_prefix(name.clone());
                        // The data dir's owner, offline: an admin.
                        let done = p.ingest_file(&name, file, true, &unpacking(&bar));
                        bar.finish_and_clear();
                        serde_json::to_value(done.with_context(|| format!("{}", file.display()))?)?
                    }
                    Mode::Remote(r) => runtime.block_on(async {
                        let size = std::fs::metadata(file)?.len();
                        let bar = progress_bar(size, "{prefix}: [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}");
                        bar.set_prefix(name.clone());
                        let sending = bar.clone();
                        let stream = futures_util::StreamExt::map(
                            tokio_util::io::ReaderStream::new(tokio::fs::File::open(file).await?),
                            move |chunk| {
                                if let Ok(c) = &chunk {
                                    sending.inc(c.len() as u64);
                                }
                                chunk
                            },
                        );
                        let v = call(
                            r.request(Method::PUT, &format!("/api/packages/{name}"))
                                .header("content-length", size)
                                .body(reqwest::Body::wrap_stream(stream)),
                        )
                        .await;
                        bar.finish_and_clear();
                        v.with_context(|| format!("{}", file.display()))
                    })?,
                };
                say!(
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
            let list = match open(target)? {
                Mode::Local(p) => serde_json::to_value(p.list()?)?,
                Mode::Remote(r) => runtime
                    .block_on(call(r.request(Method::GET, "/api/packages")))?["packages"]
                    .clone(),
            };
            say!("{:<40} {:>12} {:>10}  added", "name", "size", "keys");
            for p in list.as_array().into_iter().flatten() {
                say!(
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
            let mode = open(target)?;
            let mut after = String::new();
            loop {
                let page = match &mode {
                    Mode::Local(p) => {
                        let Some((info, keys)) = p.show(&name, &after, 1000)? else {
                            bail!("no package `{name}`");
                        };
                        if after.is_empty() {
                            say!("{}", serde_json::to_string_pretty(&info)?);
                        }
                        keys.into_iter()
                            .map(|k| (k.key, k.display, k.size))
                            .collect::<Vec<_>>()
                    }
                    Mode::Remote(r) => {
                        let v = runtime.block_on(call(
                            r.request(Method::GET, &format!("/api/packages/{name}"))
                                .query(&[("after", after.as_str())]),
                        ))?;
                        if after.is_empty() {
                            say!("{}", serde_json::to_string_pretty(&v["package"])?);
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
                    say!("{display}\t{size}");
                }
                match page.last() {
                    Some((norm, _, _)) if page.len() == 1000 => after = norm.clone(),
                    _ => break,
                }
            }
            Ok(())
        }
        PackageCommand::Remove { name, target } => {
            match open(target)? {
                Mode::Local(p) => {
                    if !p.remove(&name)? {
                        bail!("no package `{name}`");
                    }
                }
                Mode::Remote(r) => {
                    runtime.block_on(call(
                        r.request(Method::DELETE, &format!("/api/packages/{name}")),
                    ))?;
                }
            }
            say!("removed {name}");
            Ok(())
        }
    }
}
