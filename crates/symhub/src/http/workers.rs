//! The threads connections are served on: one single-threaded tokio runtime per worker
//! (`server.workers`, by default one per core) — nginx's worker processes, actix-web's
//! worker threads.
//!
//! Workers accept connections themselves, each on its own registration of the listening
//! sockets, and serve what they accept unless they already serve more connections than the
//! least busy worker, which is then handed the connection (so a few kept-alive connections,
//! wrk's 4 or a debugger's 2, are spread as evenly as before, each worker a core). Accepting on a
//! separate thread and handing every connection over woke an idle worker on every new
//! connection's way to its first byte: without it a cold small miss answers 0.53/0.58 ms
//! after a direct download from the upstream instead of 0.67/0.87 ms, a hit on a new
//! connection in 0.24/0.26 instead of 0.29/0.31 ms (`sttfb.sh`, 150 new connections each,
//! 2 vCPUs). Each new connection wakes every accepting worker (one wins the accept): so at
//! most [`MAX_ACCEPTING`] of them accept; the others are handed connections.
//!
//! Why not tokio's shared multi-threaded scheduler: with it, a worker that finds a second
//! ready task wakes an idle one to steal it, so a keep-alive request cost a quarter of a
//! futex wake-up and a context switch. On a connection's own thread its request, its fill and
//! its response run without a hand-off: +4–8 % remembered 404s/s and +8–16 % 10 KiB hits/s
//! against nginx in the same run (wrk -t2 -c32, 2 cores), and a cold miss's first byte
//! 1.8 → 1.2 ms. Background work (ledger flushes, eviction, expiry) stays on the main runtime.
//!
//! The price is no work stealing: CPU-heavy work (parsing symbol files, minidumps, CAB
//! unpacking, hashing) already runs on the blocking pool, which each worker has its own of.

use std::thread::JoinHandle;

use anyhow::Context;
use prometheus_client::metrics::gauge::Gauge;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// One connection counted on its worker, until dropped.
pub struct Serving(Gauge);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Workers that wait on the listening sockets themselves.
pub const MAX_ACCEPTING: usize = 4;

/// Each worker's blocking pool may grow at least this far, however many workers share
/// `max_blocking`: a worker's file reads must not queue behind one slow disk read.
const MIN_BLOCKING: usize = 8;

/// Running worker threads, each with its runtime's [`Handle`]. Threads are named
/// `symhub-wrk-<i>`, their blocking pools' `symhub-blk-<i>`: Linux keeps 15 bytes of a
/// thread's name, which these fit up to the 1024 workers `server.workers` allows.
pub struct Workers {
    handles: Vec<Handle>,
    /// The connections each worker serves (`symhub_connections{worker}`).
    open: Vec<Gauge>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers (0: one per available core). `max_blocking` bounds the
    /// threads of their blocking pools together (made on demand, ended after 10 s idle).
    pub fn start(count: usize, max_blocking: usize, metrics: &Metrics) -> anyhow::Result<Self> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let max_blocking = (max_blocking / count).max(MIN_BLOCKING);
        let mut workers = Self {
            handles: Vec::with_capacity(count),
            open: (0..count).map(|i| metrics.connections(i)).collect(),
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(max_blocking)
                .thread_name(format!("symhub-blk-{i}"))
                .build()
                .context("cannot start a connection worker's runtime")?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            let thread = std::thread::Builder::new()
                .name(format!("symhub-wrk-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    // Connections still open past the grace period end here, at once: a
                    // blocking task still running (a file read, a CAB member waiting on
                    // its fill) is left to end by itself rather than waited for, which
                    // would hold those connections open that much longer.
                    runtime.shutdown_background();
                })
                .context("cannot start a connection worker thread")?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// How many workers accept connections themselves: workers `0..accepting()`.
    pub fn accepting(&self) -> usize {
        self.handles.len().min(MAX_ACCEPTING)
    }

    /// Worker `i`'s runtime.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i]
    }

    /// Which worker serves a connection worker `me` accepted: `me`, unless it serves more
    /// connections than the least busy worker (as when a burst of connections is all
    /// accepted by the first worker to wake), which then takes it.
    pub fn place(&self, me: usize) -> usize {
        let (least, fewest) = self
            .open
            .iter()
            .enumerate()
            .map(|(i, g)| (i, g.get()))
            .min_by_key(|&(_, n)| n)
            .unwrap_or((me, 0));
        if self.open[me].get() > fewest {
            least
        } else {
            me
        }
    }

    /// Connections open over all workers.
    pub fn open_connections(&self) -> i64 {
        self.open.iter().map(Gauge::get).sum()
    }

    /// Counts a connection on worker `i` until the guard is dropped. Counted when placed,
    /// not when the worker first polls it, so that a burst is spread at once.
    pub fn serving(&self, i: usize) -> Serving {
        self.open[i].inc();
        Serving(self.open[i].clone())
    }

    /// Stops every worker, dropping the connections they still serve, and waits for their
    /// threads.
    pub async fn stop(self) {
        drop(self.stops);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker keeps what it accepts unless it serves more than the least busy.
    #[test]
    fn connections_go_to_the_least_busy_worker() {
        let metrics = Metrics::default();
        let workers = Workers::start(3, 8, &metrics).unwrap();
        assert_eq!(workers.accepting(), 3);
        assert_eq!(workers.place(0), 0, "as busy as the others: kept");
        let _a = workers.serving(0);
        let to = workers.place(0);
        assert_ne!(to, 0, "busier than another: handed over");
        let b = workers.serving(to);
        let c = workers.serving(workers.place(to));
        assert_eq!(metrics.connections(0).get(), 1);
        assert_eq!(
            metrics.connections(1).get() + metrics.connections(2).get(),
            2
        );
        drop((_a, b, c));
        assert_eq!(workers.place(0), 0, "closed connections are not counted");
        assert_eq!(
            metrics.connections(1).get() + metrics.connections(0).get(),
            0
        );
    }
}
