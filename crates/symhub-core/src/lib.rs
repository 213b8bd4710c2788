//! symhub-core: the data model every symhub component agrees on, with no async and no I/O so
//! it is cheap to test and to fuzz. Today it owns symbol keys ([`key`]); Breakpad headers and
//! package indexes join it as those capabilities land.

pub mod key;

pub use key::{KeyError, Spelling, SymbolKey};
