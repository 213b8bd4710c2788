//! Minidump processing: the stackwalk `minidump-stackwalk --json` prints, done by the same
//! crates (rust-minidump, `ProcessorOptions::stable_basic()` as the CLI's default), with
//! symbols from the [`Symbolicator`] instead of an HTTP symbol supplier.
//!
//! The dump is read from a file (memory-mapped, never copied into memory) and walked on a
//! thread of its own, within `symbolication.request_timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use minidump_processor::ProcessorOptions;

use super::provider::Provider;
use super::Symbolicator;

/// Why a dump gave no stackwalk.
#[derive(Debug, thiserror::Error)]
pub enum StackwalkError {
    /// Not a minidump, or one too damaged to read (rust-minidump's reason).
    #[error("not a readable minidump: {0}")]
    Unreadable(String),
    /// Read, but missing what a stackwalk needs (system info, thread list…).
    #[error("the minidump cannot be processed: {0}")]
    Unprocessable(String),
    #[error("processing took longer than symbolication.request_timeout ({0})")]
    Timeout(String),
    #[error("{0}")]
    Internal(String),
}

/// Walks the minidump at `path` and returns the JSON `minidump-stackwalk --json` prints for
/// it (`pretty`: `--pretty`).
pub async fn stackwalk(
    symbolicator: Arc<Symbolicator>,
    path: PathBuf,
    pretty: bool,
    timeout: Duration,
) -> Result<Vec<u8>, StackwalkError> {
    let runtime = tokio::runtime::Handle::current();
    let walk = move || -> Result<Vec<u8>, StackwalkError> {
        let dump = minidump::Minidump::read_path(&path)
            .map_err(|e| StackwalkError::Unreadable(e.to_string()))?;
        let local = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| StackwalkError::Internal(format!("cannot start a runtime: {e}")))?;
        let provider = Provider::new(symbolicator, runtime);
        let state = local.block_on(async {
            tokio::time::timeout(
                timeout,
                minidump_processor::process_minidump_with_options(
                    &dump,
                    &provider,
                    ProcessorOptions::stable_basic(),
                ),
            )
            .await
        });
        let state = state
            .map_err(|_| StackwalkError::Timeout(humantime::format_duration(timeout).to_string()))?
            .map_err(|e| StackwalkError::Unprocessable(e.to_string()))?;
        let mut out = Vec::new();
        state
            .print_json(&mut out, pretty)
            .map_err(|e| StackwalkError::Internal(format!("cannot write the JSON: {e}")))?;
        Ok(out)
    };
    tokio::task::spawn_blocking(walk)
        .await
        .map_err(|e| StackwalkError::Internal(format!("the stackwalk failed: {e}")))?
}
