//! The threads connections are served on: one single-threaded tokio runtime per worker
//! (`server.workers`, by default one per core), each connection handed to the next worker in
//! turn — nginx's worker processes, actix-web's worker threads.
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Each worker's blocking pool may grow at least this far, however many workers share
/// `max_blocking`: a worker's file reads must not queue behind one slow disk read.
const MIN_BLOCKING: usize = 8;

/// Running worker threads, each with its runtime's [`Handle`]. Threads are named
/// `symhub-wrk-<i>`, their blocking pools' `symhub-blk-<i>`: Linux keeps 15 bytes of a
/// thread's name, which these fit up to the 1024 workers `server.workers` allows.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers (0: one per available core). `max_blocking` bounds the
    /// threads of their blocking pools together (made on demand, ended after 10 s idle).
    pub fn start(count: usize, max_blocking: usize) -> anyhow::Result<Self> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let max_blocking = (max_blocking / count).max(MIN_BLOCKING);
        let mut workers = Self {
            handles: Vec::with_capacity(count),
            next: AtomicUsize::new(0),
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

    /// The runtime of the worker that takes the next connection (round robin).
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
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
