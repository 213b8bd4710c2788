//! What a `.sym` says about one address: the function, its start, the source line and the
//! functions inlined there. rust-minidump's own `SimpleFrame` drops inline frames, so this
//! collects them itself.

use breakpad_symbols::{FrameSymbolizer, SimpleModule};

use super::Symbols;

/// One function inlined at an address, with the line inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inline {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The symbol of a module offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbolized {
    /// The outermost function (a FUNC record, else the nearest PUBLIC below).
    pub function: Option<String>,
    /// Its start, as an offset in the module.
    pub function_base: u64,
    /// The source line in the outermost function (the call site of the first inline, if any).
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Inlined functions, innermost first (the order Eliot answers in).
    pub inlines: Vec<Inline>,
}

struct Collect {
    offset: u64,
    out: Symbolized,
}

impl FrameSymbolizer for Collect {
    fn get_instruction(&self) -> u64 {
        self.offset
    }

    fn set_function(&mut self, name: &str, base: u64, _parameter_size: u32) {
        self.out.function = Some(name.to_owned());
        self.out.function_base = base;
    }

    fn set_source_file(&mut self, file: &str, line: u32, _base: u64) {
        self.out.file = Some(file.to_owned());
        self.out.line = Some(line);
    }

    fn add_inline_frame(&mut self, name: &str, file: Option<&str>, line: Option<u32>) {
        // Called outermost first.
        self.out.inlines.insert(
            0,
            Inline {
                function: name.to_owned(),
                file: file.map(str::to_owned),
                line,
            },
        );
    }
}

impl Symbols {
    /// What the `.sym` says about `offset` (relative to the module's base).
    pub fn lookup(&self, offset: u64) -> Symbolized {
        // Base 0: offsets are module-relative.
        let module = SimpleModule::default();
        let mut c = Collect {
            offset,
            out: Symbolized::default(),
        };
        self.file.fill_symbol(&module, &mut c);
        c.out
    }
}
