//! Where bytes live. Today: a local directory of atomically committed objects ([`objects`])
//! and the SQLite index that says which key maps to which object ([`index`]). The permanent
//! symbol store (uploads, packages) and S3-compatible backends build on the same pieces.

pub mod index;
pub mod objects;

pub use index::{CachedEntry, Index};
pub use objects::{object_id, ObjectDir};
