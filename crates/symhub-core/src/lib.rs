//! symhub-core: the data model every symhub component agrees on, with no async and no I/O so
//! it is cheap to test and to fuzz: symbol keys ([`key`]) and their spelling in upstream URLs
//! ([`spelling`]), Breakpad's formats ([`breakpad`]: `.sym` headers, upload types, the
//! lenient complete body), the id of portable PDBs ([`ppdb`]) that `.snupkg` packages are
//! keyed by, elfutils' debuginfod requests and their SSQP keys ([`debuginfod`]), and what an
//! ELF file says about itself ([`elf`]: build id, debug info or code, SONAME, sections).

pub mod breakpad;
pub mod debuginfod;
pub mod elf;
pub mod key;
pub mod native;
pub mod ppdb;
pub mod spelling;

pub use debuginfod::{Artifact, BuildId, DebuginfodRequest};
pub use key::{KeyError, SymbolKey};
pub use spelling::Spelling;
