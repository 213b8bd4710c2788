//! Command line: `symhub serve` and its flags. Flags override the config file, which
//! overrides the embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use symhub::config::{Config, LogFormat, UpstreamConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "symhub",
    version,
    about = "A caching proxy and store for debug symbols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (with no config: 127.0.0.1:8080, ./symhub-data, Microsoft's symbol server).
    Serve(ServeArgs),
    /// API keys: make one (named, with a scope and an expiry, or for [auth]), list, revoke.
    #[command(subcommand)]
    Key(crate::keys_client::KeyCommand),
    /// Upload build output: PE, PDB, ELF, Mach-O, portable PDB, .nupkg and Breakpad .sym
    /// files (directories searched recursively), keyed from their bytes, in one transaction,
    /// skipping what the server already has. --dry-run prints the keys.
    Upload(crate::upload_client::UploadArgs),
    /// SSQP zip packages: add, list, show, remove.
    #[command(subcommand)]
    Package(crate::package_client::PackageCommand),
    /// Write the Breakpad `.sym` of a debug file (Mozilla's dump_syms, built in); the server
    /// runs this in a child process for each upload it makes symbols for.
    DumpSyms(symhub::upload::dump_worker::DumpArgs),
    /// Stackwalk a minidump with symbols from symhub (through a server, or on a data
    /// directory) and print the JSON `minidump-stackwalk --json` prints.
    Stackwalk(crate::stackwalk_client::StackwalkArgs),
    /// Upload transactions (product, version, comment, uploader, keys): list them.
    Transactions(crate::transactions_client::ListArgs),
    /// Delete an upload transaction, or every live one of a product (and version). A key
    /// goes only if it still has the transaction's bytes and no other live transaction
    /// recorded them; bytes nothing else uses go with it.
    Delete(crate::transactions_client::DeleteArgs),
    /// Copy a single-node store (a data directory) into a shared bucket store, resumably:
    /// run it again to carry on after an interruption.
    Migrate(MigrateArgs),
}

/// Where a shared store is: flags of `serve` and `migrate`.
#[derive(clap::Args)]
struct SharedStoreFlags {
    /// Permanent store in S3-compatible object storage, `s3://bucket/prefix`, shared by
    /// several instances. Replaces storage.store.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Shared metadata database of a bucket store, `postgres://…`. Replaces
    /// storage.database.
    #[arg(
        long,
        value_name = "URL",
        env = "SYMHUB_DATABASE_URL",
        hide_env_values = true
    )]
    database: Option<String>,
}

impl SharedStoreFlags {
    fn apply(&self, config: &mut Config) {
        if let Some(store) = &self.store {
            config.storage.store = store.clone();
        }
        if let Some(db) = &self.database {
            config.storage.database = db.clone();
        }
    }
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The data directory to copy from.
    #[arg(long, value_name = "DIR")]
    from_data_dir: PathBuf,
    /// Config of the shared store (storage.store, storage.database, storage.s3).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    shared: SharedStoreFlags,
    /// Local directory for the destination's temp files. Default: a temp directory.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    args.shared.apply(&mut config);
    if config.storage.bucket()?.is_none() {
        anyhow::bail!("symhub migrate needs a destination bucket: --store s3://bucket/prefix");
    }
    config.validate()?;
    let work = tempfile::tempdir()?;
    config.storage.data_dir = args.work_dir.unwrap_or_else(|| work.path().to_path_buf());
    if !args.from_data_dir.join("store/store.sqlite3").exists() {
        anyhow::bail!(
            "{} holds no symhub store (no store/store.sqlite3)",
            args.from_data_dir.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let _runtime = runtime.enter();
    let src = symhub::store::SymbolStore::open(&args.from_data_dir)?;
    let dst = symhub::store::SymbolStore::open_with(&config.storage)?;
    let started = std::time::Instant::now();
    // Not `eprintln!`, which panics on a closed stderr halfway through.
    let done = symhub::store::migrate::migrate(&src, &dst, &|line| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "migrate: {line}");
    })?;
    say!(
        "{}",
        serde_json::json!({ "migrated": done, "seconds": started.elapsed().as_secs_f64() })
    );
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (see symhub.example.toml). Without it the embedded default is used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, `host:port` or `unix:/path.sock`; repeatable. Replaces server.listen.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<String>,
    /// Data directory. Replaces storage.data_dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    shared: SharedStoreFlags,
    /// Upstream base URL, in priority order; repeatable. Replaces the configured upstreams.
    #[arg(long = "upstream", value_name = "URL")]
    upstream: Vec<String>,
    /// Log format. Replaces server.log_format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// File of plaintext API keys, one per line (`#` comments allowed), accepted besides
    /// the hashes in auth.api_keys. For quick setups; prefer `symhub key new`.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
}

/// Below this, a plaintext key from `--api-key-file` is warned about at start.
const MIN_KEY_CHARS: usize = 16;

fn read_key_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read API key file {} (--api-key-file)",
            path.display()
        )
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        anyhow::bail!(
            "API key file {} holds no key (one per line)",
            path.display()
        );
    }
    Ok(keys)
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            config.server.listen = self.listen.clone();
        }
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir = dir.clone();
        }
        self.shared.apply(&mut config);
        if !self.upstream.is_empty() {
            config.upstreams = self
                .upstream
                .iter()
                .enumerate()
                .map(|(i, url)| UpstreamConfig::new(&upstream_name(i, url), url))
                .collect();
        }
        if let Some(f) = self.log_format {
            config.server.log_format = f;
        }
        // elfutils' convention: a debuginfod server federates to the servers its environment
        // names. Symhub itself is never one of them if it is reached at the same URL (the
        // hop count stops loops that go through other servers).
        let from_env = std::env::var("DEBUGINFOD_URLS").ok();
        if let Some(urls) = &from_env {
            config
                .upstreams
                .extend(UpstreamConfig::from_debuginfod_urls(urls));
        }
        config.validate().context(match from_env {
            Some(_) => {
                "command-line flags and DEBUGINFOD_URLS (its upstreams are named debuginfod-1, -2…)"
            }
            None => "command-line flags",
        })?;
        Ok(config)
    }
}

/// A readable name for an upstream given only as a URL: its host, made unique.
fn upstream_name(i: usize, url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.replace(':', "_")))
        .unwrap_or_else(|| "upstream".into());
    format!("{i}-{host}")
}

fn init_logging(format: LogFormat) {
    // rust-minidump warns about each oddity of a dump or a `.sym` (thousands of lines for one
    // Windows system module): the quality of the input, not the server's health. SYMHUB_LOG
    // replaces the whole default.
    let asked = std::env::var("SYMHUB_LOG").ok().map(|s| log_levels(&s));
    let filter = asked
        .as_deref()
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::new(
                "info,breakpad_symbols=error,minidump=error,minidump_processor=error,minidump_unwind=error",
            )
        });
    // A log reader that went away (a `| head` that exited, a crashed collector) costs the
    // log, not the service: by default the subscriber reports a failed write with
    // `eprintln!`, which panics on a closed stderr, in whatever task was logging (every
    // request failed, and SIGTERM never ended the server).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `SYMHUB_LOG` with `warning` read as the level `warn`: tracing's filter takes the word for
/// a target's name, and `SYMHUB_LOG=warning` silenced every line (break-it pass).
fn log_levels(spec: &str) -> String {
    spec.split(',')
        .map(|directive| match directive.rsplit_once('=') {
            Some((target, level)) if level.trim().eq_ignore_ascii_case("warning") => {
                format!("{target}=warn")
            }
            None if directive.trim().eq_ignore_ascii_case("warning") => "warn".into(),
            _ => directive.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Key(command) => crate::keys_client::run(command),
        Command::Upload(args) => crate::upload_client::run(args),
        Command::Package(command) => crate::package_client::run(command),
        Command::Transactions(args) => crate::transactions_client::list(args),
        Command::Delete(args) => crate::transactions_client::delete(args),
        Command::Migrate(args) => migrate(args),
        Command::DumpSyms(args) => symhub::upload::dump_worker::run(args),
        Command::Stackwalk(args) => crate::stackwalk_client::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("symhub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let keys = match &args.api_key_file {
        Some(path) => read_key_file(path)?,
        None => Vec::new(),
    };
    init_logging(config.server.log_format);
    if let Some(path) = &args.api_key_file {
        let short = keys
            .iter()
            .filter(|k| k.chars().count() < MIN_KEY_CHARS)
            .count();
        if short > 0 {
            tracing::warn!(file = %path.display(), keys = short,
                "API keys shorter than {MIN_KEY_CHARS} characters are easy to guess, and \
                 uploads list a configured key by the first 12 hex digits of its SHA-256, \
                 which is enough to find a short one; make keys with `symhub key new`");
        }
    }
    // Connections are served on their own workers (`http::serve`); this runtime keeps the
    // background work. Its blocking pool is bounded like theirs (see MAX_BLOCKING_THREADS).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(symhub::http::MAX_BLOCKING_THREADS)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal as on, SignalKind};
            let mut term = on(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = on(SignalKind::interrupt()).expect("SIGINT handler");
            // Its default ends the process at once, cutting every download: it is what a
            // closed terminal sends, and operators' "reload" reflex (break-it pass).
            let mut hup = on(SignalKind::hangup()).expect("SIGHUP handler");
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => tracing::warn!(
                        "SIGHUP ignored: symhub reads its configuration at start only; \
                         restart it (SIGTERM drains in-flight responses) to apply changes"
                    ),
                }
            }
            tracing::info!("shutting down: no new connections, finishing in-flight responses");
            signal.cancel();
            // A second request to stop does not wait for the grace period, unless it came
            // with the first: GNU `timeout` signals the child and then its process group.
            let first = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                if first.elapsed() > std::time::Duration::from_secs(1) {
                    break;
                }
            }
            tracing::warn!("stopping now (a second signal): responses in flight are cut");
            std::process::exit(1);
        });
        symhub::serve(config, keys, shutdown).await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn warning_is_the_warn_level() {
        assert_eq!(super::log_levels("warning"), "warn");
        assert_eq!(
            super::log_levels("WARNING,symhub=debug"),
            "warn,symhub=debug"
        );
        assert_eq!(super::log_levels("info,hyper=warning"), "info,hyper=warn");
        assert_eq!(super::log_levels("error"), "error");
    }
}
