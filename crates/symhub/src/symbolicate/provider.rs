//! minidump-processor's [`SymbolProvider`] over the [`Symbolicator`]: what the stackwalker
//! asks of a module (its symbols for a frame, its CFI for unwinding) answered from the shared
//! parsed-symbol cache, with the per-dump statistics (`loaded_symbols`, `missing_symbols`,
//! `corrupt_symbols`, `symbol_url`) the `minidump-stackwalk --json` output reports.
//!
//! The stackwalk runs on a thread of its own (it is CPU work); every lookup hops to the
//! server's runtime, where the cache's fills and conversions live.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use minidump::Module;
use minidump_unwind::{
    FileError, FileKind, FillSymbolError, FrameSymbolizer, FrameWalker, SymbolProvider, SymbolStats,
};

use symhub_core::native::base_name;

use super::{ModuleRef, NoSymbols, Symbolicator, Symbols};

type Found = Result<Arc<Symbols>, NoSymbols>;

pub struct Provider {
    symbolicator: Arc<Symbolicator>,
    runtime: tokio::runtime::Handle,
    /// What this dump's modules turned out to have, by module identity.
    modules: Mutex<HashMap<(String, String, String, String), Found>>,
    /// By the code file's name, as rust-minidump's `Symbolizer` keys them.
    stats: Mutex<HashMap<String, SymbolStats>>,
}

impl Provider {
    /// `runtime`: the server's, where lookups run.
    pub fn new(symbolicator: Arc<Symbolicator>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            symbolicator,
            runtime,
            modules: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    async fn symbols(&self, module: &(dyn Module + Sync)) -> Found {
        let debug_id = module
            .debug_identifier()
            .map(|d| d.breakpad().to_string())
            .unwrap_or_default();
        let debug_file = module.debug_file().map(|f| base_name(&f).to_owned());
        let code_file = module.code_file().into_owned();
        let code_id = module.code_identifier().map(|c| c.to_string());
        let id = (
            code_file.clone(),
            code_id.clone().unwrap_or_default(),
            debug_file.clone().unwrap_or_default(),
            debug_id.clone(),
        );
        if let Some(found) = self.lock_modules().get(&id) {
            return found.clone();
        }
        let wanted = ModuleRef {
            debug_file: debug_file.unwrap_or_default(),
            debug_id,
            code: code_id.map(|c| (code_file.clone(), c)),
        };
        let symbolicator = self.symbolicator.clone();
        let found = self
            .runtime
            .spawn(async move { symbolicator.module(&wanted).await })
            .await
            .unwrap_or(Err(NoSymbols::Unavailable));
        let stats = SymbolStats {
            symbol_url: found.as_ref().ok().and_then(|s| s.file.url.clone()),
            loaded_symbols: found.is_ok() || matches!(found, Err(NoSymbols::Corrupt(_))),
            corrupt_symbols: matches!(found, Err(NoSymbols::Corrupt(_))),
            extra_debug_info: None,
        };
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(base_name(&code_file).to_owned(), stats);
        self.lock_modules().insert(id, found.clone());
        found
    }

    fn lock_modules(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String, String, String), Found>> {
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SymbolProvider for Provider {
    async fn fill_symbol(
        &self,
        module: &(dyn Module + Sync),
        frame: &mut (dyn FrameSymbolizer + Send),
    ) -> Result<(), FillSymbolError> {
        let symbols = self.symbols(module).await.map_err(|_| FillSymbolError {})?;
        symbols.file.fill_symbol(module, frame);
        Ok(())
    }

    async fn walk_frame(
        &self,
        module: &(dyn Module + Sync),
        walker: &mut (dyn FrameWalker + Send),
    ) -> Option<()> {
        let symbols = self.symbols(module).await.ok()?;
        symbols.file.walk_frame(module, walker)
    }

    async fn get_file_path(
        &self,
        _module: &(dyn Module + Sync),
        _file_kind: FileKind,
    ) -> Result<PathBuf, FileError> {
        // Only used to unwind with native debug info, which symhub does not do.
        Err(FileError::NotFound)
    }

    fn stats(&self) -> HashMap<String, SymbolStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
