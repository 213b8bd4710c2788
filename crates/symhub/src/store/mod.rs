//! Where bytes live: a local directory of atomically committed objects ([`objects`], also
//! used by the proxy cache, whose index lives with it in [`crate::cache`]), and the permanent
//! symbol store ([`symbols`]):
//! content-addressed blobs ([`blobs`]: local, or in an S3-compatible bucket) plus the key
//! table, v2 upload sessions, SSQP packages ([`packages`]) and upload transactions
//! ([`transactions`]) in its database ([`db`]: SQLite, or a PostgreSQL shared by several
//! instances).

pub mod blobs;
pub mod changes;
mod claims;
pub mod db;
pub mod entries;
pub mod keys;
mod locate;
pub mod migrate;
pub mod missing;
pub mod modules;
pub mod objects;
pub mod packages;
mod pipelined;
pub(crate) mod readers;
pub mod retention;
mod schema;
mod scratch;
pub mod sessions;
mod spare;
pub mod symbols;
pub mod time;
pub mod transactions;

pub use changes::StoreChange;
pub use claims::BlobClaim;
pub use locate::BlobLocation;
pub use objects::{object_id, ObjectDir, TempObject};
pub use pipelined::Pipelined;
pub use symbols::{StoredSymbol, SymbolStore};

/// The store's bucket or shared database failed to answer: clients should retry later
/// (APIs answer 503), nothing is wrong with their request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Whether an error comes from the shared store being unreachable.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Unavailable>()
            || c.downcast_ref::<db::DbError>()
                .is_some_and(db::DbError::is_unreachable)
            || c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<Unavailable>())
    })
}

/// Opens one of symhub's SQLite databases with the settings they share, then applies its
/// schema. `synchronous`: `NORMAL` where losing the last commits to a power cut only costs
/// re-downloads (the cache), `FULL` where an acknowledged write must survive (the store).
pub(crate) fn open_db(
    path: &std::path::Path,
    what: &str,
    synchronous: &str,
    schema: &str,
) -> anyhow::Result<rusqlite::Connection> {
    use anyhow::Context;
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {what} database {}", path.display()))?;
    // An 8 MiB page cache (SQLite's default is 2 MB) keeps the upper levels of big indexes
    // in memory. Not mmap: its pages would count in RSS by the hundreds of MB.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA cache_size = -8192;
         PRAGMA synchronous = {synchronous};
         PRAGMA busy_timeout = 5000;
         {schema}"
    ))
    .with_context(|| format!("cannot initialise {what} database {}", path.display()))?;
    Ok(conn)
}

pub use time::{unix_millis, unix_secs};
