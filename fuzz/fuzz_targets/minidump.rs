//! Minidumps as `/api/minidump` walks them (rust-minidump, `ProcessorOptions::stable_basic()`,
//! JSON out): a hostile dump is an error or a walk, never a panic or a hang. Symbols are out
//! of scope here (no module has any), as is reading the file (`Minidump::read` on the bytes
//! is what `read_path` does on the mapped file).
#![no_main]
use std::collections::HashMap;

use breakpad_symbols::{StringSymbolSupplier, Symbolizer};
use libfuzzer_sys::fuzz_target;
use minidump_processor::ProcessorOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = minidump::Minidump::read(data) else {
        return;
    };
    let provider = Symbolizer::new(StringSymbolSupplier::new(HashMap::new()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let state = runtime.block_on(minidump_processor::process_minidump_with_options(
        &dump,
        &provider,
        ProcessorOptions::stable_basic(),
    ));
    if let Ok(state) = state {
        let mut out = Vec::new();
        state.print_json(&mut out, false).unwrap();
    }
});
