//! Read-only SQLite connections beside a database's one writer, for the point lookups on a
//! request's way to its answer (is this key stored, cached, remembered missing?).
//!
//! In WAL mode a reader never waits for a writer: it reads the last committed state while an
//! upload's transaction (and its fsync) or an eviction batch holds the writer. Sharing the
//! writer's connection would queue every lookup behind them, and a lookup that cannot queue
//! may run on the connection's own worker thread instead of a hop to the blocking pool, which
//! after idle cost a cold miss ~0.5 ms of its first byte on a 2-vCPU VM (`cache::load`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use rusqlite::Connection;

/// Readers per database: one per connection worker of a small machine and a spare for the
/// blocking pool. Each holds at most [`READER_CACHE_KIB`] of pages, filled as lookups need
/// them; the kernel's page cache holds the rest.
const READERS: usize = 4;

/// A reader's own page cache, in KiB (SQLite's `cache_size`): the upper levels of the
/// indexes lookups walk.
const READER_CACHE_KIB: u32 = 512;

pub(crate) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens readers of the database at `path`, which its writer has opened (so it exists,
    /// in WAL mode, with its schema). `what` names it in errors ("store", "index").
    pub fn open(path: &Path, what: &str) -> anyhow::Result<Self> {
        let conns = (0..READERS)
            .map(|_| {
                let conn = Connection::open(path)
                    .with_context(|| format!("cannot open {what} database {}", path.display()))?;
                // `query_only`: a write through a reader is a bug, refused by SQLite
                // rather than racing the writer for the lock.
                conn.execute_batch(&format!(
                    "PRAGMA query_only = ON;
                     PRAGMA cache_size = -{READER_CACHE_KIB};
                     PRAGMA busy_timeout = 5000;"
                ))
                .with_context(|| format!("cannot initialise {what} database {}", path.display()))?;
                Ok(Mutex::new(conn))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free reader if there is one, else the next in turn (held for one lookup's
    /// microseconds).
    pub fn get(&self) -> MutexGuard<'_, Connection> {
        free_or_next(&self.conns, &self.next)
    }
}

/// A free connection of a pool if there is one, else the next in turn. A panic while one
/// was held leaves it usable: the database keeps its own transactions.
pub(super) fn free_or_next<'a, T>(conns: &'a [Mutex<T>], next: &AtomicUsize) -> MutexGuard<'a, T> {
    for c in conns {
        if let Ok(g) = c.try_lock() {
            return g;
        }
    }
    let i = next.fetch_add(1, Ordering::Relaxed) % conns.len();
    conns[i].lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point of readers: a lookup answers while the writer is inside a transaction,
    /// and sees what was committed before it.
    #[test]
    fn readers_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut writer =
            super::super::open_db(&path, "test", "FULL", "CREATE TABLE t (k TEXT);").unwrap();
        writer.execute("INSERT INTO t VALUES ('a')", []).unwrap();
        let readers = Readers::open(&path, "test").unwrap();
        let tx = writer
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO t VALUES ('b')", []).unwrap();
        let n: i64 = readers
            .get()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            n, 1,
            "a reader sees the last commit, not the open transaction"
        );
        tx.commit().unwrap();
        let n: i64 = readers
            .get()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let refused = readers.get().execute("INSERT INTO t VALUES ('c')", []);
        assert!(refused.is_err(), "readers are read-only");
    }

    /// The store's lookups read past an open write transaction (an upload's commit and its
    /// fsync) instead of queueing behind it on the writer's connection.
    #[test]
    fn store_reads_do_not_queue_behind_a_write() {
        use crate::store::db::{p, Db, DbTarget};
        use std::sync::{mpsc, Arc};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let target = DbTarget::Sqlite(dir.path().join("s.db"));
        let db = Arc::new(Db::open(&target, "CREATE TABLE t (k TEXT);", "").unwrap());
        db.execute("INSERT INTO t VALUES ('a')", p![]).unwrap();
        let (in_tx, writing) = mpsc::channel();
        let (read, was_read) = mpsc::channel::<()>();
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                db.tx(|c| {
                    c.execute("INSERT INTO t VALUES ('b')", p![])?;
                    in_tx.send(()).unwrap();
                    Ok(was_read.recv_timeout(Duration::from_secs(5)).is_ok())
                })
                .unwrap()
            })
        };
        writing.recv().unwrap();
        let row = db.read_query_opt("SELECT count(*) FROM t", p![]).unwrap();
        let _ = read.send(());
        assert!(
            writer.join().unwrap(),
            "the read waited for the write transaction to end"
        );
        assert_eq!(row.unwrap().int(0), 1, "the last committed state");
        let row = db.read_query_opt("SELECT count(*) FROM t", p![]).unwrap();
        assert_eq!(row.unwrap().int(0), 2, "a commit is seen by the next read");
    }
}
