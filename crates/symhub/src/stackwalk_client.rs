//! `symhub stackwalk DUMP`: what `/api/minidump` answers (the JSON `minidump-stackwalk
//! --json` prints), from the command line: through a server (`--url`), or in this process
//! on a data directory with its config's upstreams, symbols made on demand included.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::target::{Opened, Target};

#[derive(clap::Args)]
pub struct StackwalkArgs {
    /// The minidump.
    dump: PathBuf,
    /// Indent the JSON (`minidump-stackwalk --pretty`).
    #[arg(long)]
    pretty: bool,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: StackwalkArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let _runtime = runtime.enter();
    let dump = args.dump;
    let meta =
        std::fs::metadata(&dump).with_context(|| format!("cannot read {}", dump.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file (give the minidump)", dump.display());
    }
    let json = match args.target.open_for_reading()? {
        Opened::Remote(r) => runtime.block_on(async {
            let body = tokio::fs::File::open(&dump).await?;
            let stream = tokio_util::io::ReaderStream::new(body);
            let query = if args.pretty { "?pretty=1" } else { "" };
            let resp = r
                .request(reqwest::Method::POST, &format!("/api/minidump{query}"))
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            if !status.is_success() {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                bail!(
                    "{}: {status}: {}",
                    dump.display(),
                    v["message"].as_str().map_or_else(
                        || String::from_utf8_lossy(&body).into_owned(),
                        str::to_owned
                    )
                );
            }
            Ok(body.to_vec())
        })?,
        Opened::Local { store, config } => runtime.block_on(async {
            let metrics = Arc::new(symhub::metrics::Metrics::default());
            let upstreams = Arc::new(symhub::upstream::Upstreams::new(&config, metrics.clone())?);
            let cache = symhub::cache::Cache::open(&config, store, upstreams, metrics)?;
            let symbolicator = symhub::symbolicate::Symbolicator::new(cache, &config.symbolication);
            symhub::symbolicate::minidump::stackwalk(
                symbolicator,
                dump.clone(),
                args.pretty,
                config.symbolication.request_timeout,
            )
            .await
            .with_context(|| dump.display().to_string())
        })?,
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(&json)?;
    out.write_all(b"\n")?;
    Ok(())
}
