//! `symhub upload PATH…`: a build directory in, every key out — like `symstore add /r /t /v
//! /c`, `sentry-cli debug-files upload` and Mozilla's dump_syms-and-upload scripts in one.
//! Each file is identified here from its bytes (only to print `--dry-run` and to skip what
//! the server holds: the server identifies it again and trusts nothing sent); files whose
//! bytes are already under all their keys are recorded in the run's transaction, not sent;
//! the rest stream to `PUT /api/files/<name>` several at a time (or, offline, straight into
//! a data directory), with a progress bar on a terminal and a summary at the end.
//! `--sym-upload-v2` sends `.sym` files with Google's protocol to servers that have only it.

mod plan;
mod send;
mod sym_upload_v2;

use std::path::PathBuf;

use anyhow::bail;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use plan::{find_files, Planned};
use send::{Outcome, Sink};

#[derive(clap::Args)]
pub struct UploadArgs {
    #[command(flatten)]
    target: crate::target::Target,
    /// The run's product (symstore's /t); default: the first path's directory name.
    #[arg(long)]
    product: Option<String>,
    /// The run's version (symstore's /v).
    #[arg(long, default_value = "")]
    version: String,
    /// A comment kept with the run (symstore's /c).
    #[arg(long, default_value = "")]
    comment: String,
    /// Remove the run's files after this long (`28d`, `12h`), as for try builds: the server
    /// deletes the transaction once it expires, keeping bytes another run still holds.
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// Print each file's format, ids and keys; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upload files even when the server holds their bytes under every key.
    #[arg(long)]
    force: bool,
    /// Files uploaded at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Send Breakpad `.sym` files with sym-upload-v2 (for servers other than symhub);
    /// other files are skipped.
    #[arg(long)]
    sym_upload_v2: bool,
    /// Files, and directories searched recursively.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Default)]
struct Totals {
    uploaded: usize,
    skipped: usize,
    failed: usize,
    refused: usize,
    not_debug: usize,
    /// Distinct keys: a pair's `.sym` is reported with each of its two files.
    keys: std::collections::HashSet<String>,
    bytes: u64,
    sym_failed: usize,
}

fn default_product(paths: &[PathBuf]) -> String {
    let first = paths[0].canonicalize().unwrap_or_else(|_| paths[0].clone());
    let dir = if first.is_dir() {
        first.as_path()
    } else {
        first.parent().unwrap_or(&first)
    };
    dir.file_name()
        .map_or_else(|| "build".into(), |n| n.to_string_lossy().into_owned())
}

pub fn run(args: UploadArgs) -> anyhow::Result<()> {
    let files = find_files(&args.paths)?;
    let mut planned = Vec::with_capacity(files.len());
    let mut totals = Totals::default();
    for path in &files {
        match plan::plan(path) {
            Ok(p) if p.is_upload() => planned.push(p),
            Ok(Planned {
                what: plan::What::Refused(why),
                ..
            }) => {
                totals.refused += 1;
                say!("REFUSED   {}: {why}", path.display());
            }
            Ok(p) => {
                totals.not_debug += 1;
                if args.dry_run {
                    say!("{}: {}", p.path.display(), p.describe().join("; "));
                }
            }
            Err(e) => {
                totals.failed += 1;
                say!("FAILED    {}: {e:#}", path.display());
            }
        }
    }
    if args.dry_run {
        for p in &planned {
            say!("{}", p.path.display());
            for line in p.describe() {
                say!("  {line}");
            }
        }
        say!(
            "{} debug files, {} other files, {} refused, {} failed (dry run: nothing uploaded)",
            planned.len(),
            totals.not_debug,
            totals.refused,
            totals.failed
        );
        if totals.refused + totals.failed > 0 {
            bail!(
                "{} files cannot be uploaded",
                totals.refused + totals.failed
            );
        }
        return Ok(());
    }
    // Binaries first: a debug file's `.sym` is then made once, from both.
    planned.sort_by_key(Planned::has_debug_info);
    if planned.is_empty() && totals.failed + totals.refused == 0 {
        bail!(
            "no debug files found in {:?} ({} other files)",
            args.paths,
            totals.not_debug
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let _entered = runtime.enter();
    let product = args
        .product
        .clone()
        .unwrap_or_else(|| default_product(&args.paths));
    let run = Run {
        product,
        version: args.version,
        comment: args.comment,
        expires: args.expires,
        force: args.force,
        jobs: args.jobs,
    };
    let sink = Sink::open(args.target, args.sym_upload_v2)?;
    runtime.block_on(upload_all(&sink, planned, &run, &mut totals))?;
    say!(
        "{} uploaded, {} skipped (already there), {} failed; {} keys, {}, {} refused, {} not debug files{}",
        totals.uploaded,
        totals.skipped,
        totals.failed,
        totals.keys.len(),
        bytesize::ByteSize::b(totals.bytes).display().si(),
        totals.refused,
        totals.not_debug,
        if totals.sym_failed > 0 {
            format!(", {} Breakpad .sym not made", totals.sym_failed)
        } else {
            String::new()
        }
    );
    if totals.failed + totals.refused > 0 {
        bail!(
            "{} of {} files were not stored",
            totals.failed + totals.refused,
            files.len()
        );
    }
    Ok(())
}

/// The run's settings, once the target is opened.
struct Run {
    product: String,
    version: String,
    comment: String,
    expires: Option<String>,
    force: bool,
    jobs: usize,
}

async fn upload_all(
    sink: &Sink,
    planned: Vec<Planned>,
    args: &Run,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    // Ctrl-C ends the run with what it sent, and says so: the transaction otherwise looks
    // like a whole release (break-it pass). Caught from here on, acted on between files.
    let mut interrupted =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let transaction = sink
        .begin(
            &args.product,
            &args.version,
            &args.comment,
            args.expires.as_deref(),
        )
        .await?;
    if let Some(id) = transaction {
        say!(
            "transaction {id}: product {:?} version {:?}",
            args.product,
            args.version
        );
    }
    let held = if args.force {
        vec![false; planned.len()]
    } else {
        sink.held(&planned, transaction).await?
    };
    let bytes: u64 = planned
        .iter()
        .zip(&held)
        .filter(|(_, h)| !**h)
        .map(|(p, _)| p.size)
        .sum();
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    let total = planned.len();
    let mut results = futures_util::stream::iter(planned.into_iter().zip(held).enumerate())
        .map(|(i, (p, held))| {
            let bar = &bar;
            async move {
                let outcome = if held {
                    Outcome::Held
                } else {
                    let o = sink.send(&p, transaction).await;
                    bar.inc(p.size);
                    o
                };
                (i, p, outcome)
            }
        })
        .buffer_unordered(args.jobs.max(1));
    let mut done = 0;
    loop {
        let next = tokio::select! {
            next = results.next() => next,
            _ = interrupted.recv() => {
                bar.finish_and_clear();
                let holds = match transaction {
                    Some(id) => format!(
                        "; transaction {id} holds only the files handled so far: run the same \
                         command again to complete the release (files already there are \
                         skipped), or remove it with `symhub delete --transaction {id}`"
                    ),
                    None => String::new(),
                };
                bail!("interrupted after {done} of {total} files{holds}");
            }
        };
        let Some((i, p, outcome)) = next else { break };
        done += 1;
        bar.set_message(p.name.clone());
        let n = i + 1;
        let line = match &outcome {
            Outcome::Held => {
                totals.skipped += 1;
                format!("[{n}/{total}] present   {}", p.path.display())
            }
            Outcome::Stored {
                keys,
                duplicate,
                sym_failed,
            } => {
                totals.keys.extend(keys.iter().map(|k| k.to_lowercase()));
                totals.sym_failed += sym_failed.len();
                if *duplicate {
                    totals.skipped += 1;
                } else {
                    totals.uploaded += 1;
                    totals.bytes += p.size;
                }
                let mut line = format!(
                    "[{n}/{total}] {} {} ({} keys)",
                    if *duplicate { "identical" } else { "uploaded " },
                    p.path.display(),
                    keys.len()
                );
                for why in sym_failed {
                    line.push_str(&format!("\n          Breakpad .sym not made: {why}"));
                }
                line
            }
            Outcome::Refused(why) => {
                totals.refused += 1;
                format!("[{n}/{total}] REFUSED   {}: {why}", p.path.display())
            }
            Outcome::Failed(why) => {
                totals.failed += 1;
                format!("[{n}/{total}] FAILED    {}: {why}", p.path.display())
            }
        };
        bar.suspend(|| say!("{line}"));
    }
    bar.finish_and_clear();
    Ok(())
}
