//! Accepting connections: each accepting worker ([`workers`]) waits on its own registration
//! of every listening socket, takes a free connection slot (`server.max_connections`) for
//! what it accepts, and serves the connection itself or hands it to a less busy worker
//! ([`workers::Workers::place`]). At shutdown each loop stops accepting and gives its
//! connections their grace period.
//!
//! A loop that has accepted waits for a slot before it accepts again: past the cap, each
//! loop holds one connection and the rest wait in the kernel's backlog. Taking the slot
//! before accepting, as one accept loop per listener did, let the idle loops of one listener
//! (up to four per listener now) hold every slot while another's connections waited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::workers::{Serving, Workers};
use super::{serve_conn, Bound, ConnLimits, Front, Peer};

/// A listening socket between runtimes: a socket is registered with the reactor of the
/// runtime that made it, so each worker registers its own duplicate of it.
pub(super) enum Listening {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Listening {
    /// Takes a bound socket off the runtime that bound it.
    pub fn from_bound(b: Bound) -> std::io::Result<Self> {
        Ok(match b {
            Bound::Tcp(l) => Listening::Tcp(l.into_std()?),
            Bound::Unix(l, _) => Listening::Unix(l.into_std()?),
        })
    }

    /// Another descriptor of the same socket (`dup`): the kernel queues its connections
    /// once, for whichever worker accepts first.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(match self {
            Listening::Tcp(l) => Listening::Tcp(l.try_clone()?),
            Listening::Unix(l) => Listening::Unix(l.try_clone()?),
        })
    }

    /// Registers the socket with the current runtime's reactor.
    fn into_tokio(self) -> std::io::Result<Listener> {
        Ok(match self {
            Listening::Tcp(l) => Listener::Tcp(tokio::net::TcpListener::from_std(l)?),
            Listening::Unix(l) => Listener::Unix(tokio::net::UnixListener::from_std(l)?),
        })
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Conn> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s, a)
            }),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
        }
    }
}

/// What the server shares with every accept loop.
#[derive(Clone)]
pub(super) struct Shared {
    pub front: Front,
    pub shutdown: CancellationToken,
    pub limits: ConnLimits,
    pub slots: Arc<tokio::sync::Semaphore>,
    pub workers: Arc<Workers>,
    /// The second (unix) of the last "accept failed" line: one a second over all loops,
    /// not one per loop every 50 ms for as long as descriptors run out.
    pub accept_failed: Arc<AtomicU64>,
    /// When the first loop saw the shutdown: the grace periods, and the wait for downloads
    /// in progress after them, count from there.
    pub stopped_at: Arc<std::sync::OnceLock<std::time::Instant>>,
}

/// Accepts on worker `me` until shutdown, then lets the connections it accepted run for
/// their grace period. Runs on worker `me`'s runtime.
pub(super) async fn accept_loop(me: usize, socket: Listening, shared: Shared) {
    let listener = match socket.into_tokio() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                worker = me,
                "a worker cannot register a listening socket: {e}"
            );
            return;
        }
    };
    let Shared {
        front,
        shutdown,
        limits,
        slots,
        workers,
        accept_failed,
        stopped_at,
    } = shared;
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(conn) => {
                let slot = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
                };
                let to = workers.place(me);
                let held = (slot, workers.serving(to));
                let (front, watcher) = (front.clone(), graceful.watcher());
                if to == me {
                    tokio::spawn(serve(conn, front, watcher, limits, held));
                } else {
                    hand_off(conn, workers.handle(to), front, watcher, limits, held);
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                let now = crate::store::unix_secs(std::time::SystemTime::now()) as u64;
                if accept_failed.swap(now, Ordering::Relaxed) != now {
                    let out_of_fds = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE]
                        .map(|n| Some(n.raw_os_error()))
                        .contains(&e.raw_os_error());
                    let advice = if out_of_fds {
                        ": raise the open-files limit (ulimit -n, systemd LimitNOFILE=) \
                         or lower server.max_connections"
                    } else {
                        ""
                    };
                    tracing::warn!("accept failed: {e}{advice}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    stopped_at.get_or_init(std::time::Instant::now);
    // What is still open when the period ends is cut when the workers stop, and said once
    // then by `serve`, not once per loop.
    let _ = tokio::time::timeout(limits.grace, graceful.shutdown()).await;
}

enum Conn {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Unix(tokio::net::UnixStream),
}

/// Serves an accepted connection on the current worker; `held` (its connection slot and
/// its count on the worker) is released when it ends.
async fn serve(
    conn: Conn,
    front: Front,
    watcher: Watcher,
    limits: ConnLimits,
    held: (OwnedSemaphorePermit, Serving),
) {
    match conn {
        Conn::Tcp(s, addr) => serve_conn(s, Peer::Tcp(addr), front, watcher, limits).await,
        Conn::Unix(s) => serve_conn(s, Peer::Unix, front, watcher, limits).await,
    }
    drop(held);
}

/// An accepted connection between runtimes (see [`Listening`]).
enum Moving {
    Tcp(std::net::TcpStream, std::net::SocketAddr),
    Unix(std::os::unix::net::UnixStream),
}

/// Moves an accepted connection to `worker`'s runtime and serves it there.
fn hand_off(
    conn: Conn,
    worker: &tokio::runtime::Handle,
    front: Front,
    watcher: Watcher,
    limits: ConnLimits,
    held: (OwnedSemaphorePermit, Serving),
) {
    let moving = match conn {
        Conn::Tcp(s, addr) => s.into_std().map(|s| Moving::Tcp(s, addr)),
        Conn::Unix(s) => s.into_std().map(Moving::Unix),
    };
    let moving = match moving {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("cannot hand a new connection to a worker, closed: {e}");
            return;
        }
    };
    worker.spawn(async move {
        let conn = match moving {
            Moving::Tcp(s, addr) => tokio::net::TcpStream::from_std(s).map(|s| Conn::Tcp(s, addr)),
            Moving::Unix(s) => tokio::net::UnixStream::from_std(s).map(Conn::Unix),
        };
        match conn {
            Ok(conn) => serve(conn, front, watcher, limits, held).await,
            Err(e) => tracing::warn!("a worker cannot take over a new connection, closed: {e}"),
        }
    });
}

/// The accept loops of `listeners`, one per accepting worker and listener, each spawned on
/// its worker. Their handles end when the loops have.
pub(super) fn start(
    listeners: Vec<Bound>,
    shared: &Shared,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    use anyhow::Context;
    let mut loops = Vec::new();
    for l in listeners {
        let what = l.describe();
        let socket = Listening::from_bound(l)
            .with_context(|| format!("cannot hand {what} to the connection workers"))?;
        for me in 0..shared.workers.accepting() {
            let copy = socket
                .try_clone()
                .with_context(|| format!("cannot hand {what} to the connection workers"))?;
            let handle = shared.workers.handle(me);
            loops.push(handle.spawn(accept_loop(me, copy, shared.clone())));
        }
    }
    Ok(loops)
}
