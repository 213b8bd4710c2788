//! Where bytes live: a local directory of atomically committed objects ([`objects`]), the
//! proxy cache's SQLite index ([`index`]), and the permanent symbol store ([`symbols`]):
//! content-addressed blobs plus the key table, v2 upload sessions and SSQP packages
//! ([`packages`]).

pub mod index;
pub mod objects;
pub mod packages;
pub mod symbols;

pub use index::{CachedEntry, Index};
pub use objects::{object_id, ObjectDir};
pub use symbols::SymbolStore;
