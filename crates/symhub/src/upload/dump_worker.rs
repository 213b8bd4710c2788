//! Breakpad symbols made by Mozilla's dump_syms (as a library) in a child process: `symhub
//! dump-syms`. The files are untrusted uploads and dump_syms reads each one whole and may
//! panic on a hostile one, so it runs where a memory limit (`RLIMIT_AS`), a time limit (the
//! parent kills it) and a crash cost nothing but that one `.sym`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct DumpLimits {
    /// Address space of the child, in bytes (`RLIMIT_AS`).
    pub max_memory: u64,
    /// Wall-clock time before the child is killed.
    pub timeout: Duration,
    /// The settings behind `timeout` and `max_memory`, named in the errors.
    pub settings: (&'static str, &'static str),
}

/// `symhub dump-syms`: writes the Breakpad `.sym` of `files` (one debug file, optionally with
/// the binary it belongs to: a PDB and its PE, a split `.debug` and its stripped binary, a
/// dSYM and its Mach-O, which dump_syms merges by debug id) to `out`.
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Where to write the `.sym` (`-` for standard output).
    #[arg(long, short, default_value = "-")]
    pub out: String,
    /// Address-space limit for this process, in bytes (set by the server; 0 = none).
    #[arg(long, default_value_t = 0)]
    pub max_memory: u64,
    /// The debug file and optionally its binary.
    #[arg(required = true, num_args = 1..=2)]
    pub files: Vec<PathBuf>,
}

/// The body of `symhub dump-syms`.
#[cfg(not(feature = "dump-syms"))]
pub fn run(_: DumpArgs) -> anyhow::Result<()> {
    anyhow::bail!("this symhub was built without the `dump-syms` feature")
}

/// The body of `symhub dump-syms`.
#[cfg(feature = "dump-syms")]
pub fn run(args: DumpArgs) -> anyhow::Result<()> {
    if args.max_memory > 0 {
        rlimit::setrlimit(rlimit::Resource::AS, args.max_memory, args.max_memory)?;
    }
    let output = dump_syms::dumper::Output::File(args.out.as_str().into());
    let mut config = dump_syms::dumper::Config::with_output(output);
    // A `.sym` without CFI still symbolicates (frame pointers, scanning); it is not an error.
    config.check_cfi = false;
    let names: Vec<&str> = args
        .files
        .iter()
        .map(|p| {
            p.to_str()
                .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", p.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    match names.as_slice() {
        [one] => dump_syms::dumper::single_file(&config, one)?,
        _ => dump_syms::dumper::several_files(&config, &names)?,
    }
    Ok(())
}

/// Runs `symhub dump-syms` on `files` into `out`, within `limits`. The error says why no
/// `.sym` came out (the child's last stderr line, a signal, the timeout).
pub async fn dump(files: &[PathBuf], out: &Path, limits: DumpLimits) -> Result<(), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find symhub's executable: {e}"))?;
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("dump-syms")
        .arg("--out")
        .arg(out)
        .arg("--max-memory")
        .arg(limits.max_memory.to_string())
        .args(files)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start dump-syms: {e}"))?;
    let done = tokio::time::timeout(limits.timeout, child.wait_with_output()).await;
    let output = match done {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("dump-syms failed: {e}")),
        Err(_) => {
            return Err(format!(
                "dump-syms took longer than {} ({})",
                limits.settings.0,
                humantime::format_duration(limits.timeout)
            ))
        }
    };
    let made = std::fs::metadata(out).is_ok_and(|m| m.len() > 0);
    if output.status.success() && made {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(match (output.status.code(), last) {
        (Some(0), _) => "dump_syms found nothing to write".to_owned(),
        (None, _) => format!(
            "dump-syms was killed ({}): the file may need more than {}",
            output.status, limits.settings.1
        ),
        (_, "") => format!("dump-syms failed ({})", output.status),
        (_, line) => format!("dump-syms: {line}"),
    })
}

/// Rewrites a `.sym`'s `INFO CODE_ID <id> <file>` line with the binary's real name
/// (dump_syms writes the name of the file it was given, or none).
pub fn name_code_file(out: &Path, name: &str) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut from = std::io::BufReader::new(std::fs::File::open(out)?);
    let fixed = out.with_extension("named");
    let mut to = std::io::BufWriter::new(std::fs::File::create(&fixed)?);
    let mut line = String::new();
    for _ in 0..2 {
        line.clear();
        from.read_line(&mut line)?;
        match line.strip_prefix("INFO CODE_ID ") {
            Some(rest) => {
                let id = rest.split_whitespace().next().unwrap_or("");
                writeln!(to, "INFO CODE_ID {id} {name}")?;
            }
            None => to.write_all(line.as_bytes())?,
        }
    }
    std::io::copy(&mut from, &mut to)?;
    to.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&fixed, out)?;
    Ok(())
}
