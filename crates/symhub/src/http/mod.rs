//! The HTTP front: listeners (TCP and UNIX sockets), the router, graceful shutdown.
//!
//! Handlers are thin: they parse the request, call a service ([`crate::cache::Cache`]), and
//! map its answer to a response. Routes: `/healthz`, `/metrics`, the upload and `/api/…`
//! routes, `/symbolicate/v5`, and every other path is a symbol path (under
//! `server.path_prefix` when one is configured).

mod accept;
mod api;
mod body;
mod console;
mod debuginfod;
mod entries;
pub mod error;
mod extract;
mod files;
mod idle;
pub mod json;
pub mod keys;
pub mod log;
mod missing;
mod names;
mod ops;
mod origin;
mod packages;
mod routes;
mod status;
mod symbolicate;
mod symbols;
mod transactions;
mod workers;
mod zerocopy;

pub use routes::{front, prefix_taken, v1_path_taken, Front};

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::future::{ready, BoxFuture, Either, FutureExt, Ready};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::ApiKeys;
use crate::cache::Cache;
use crate::config::{Config, ListenAddr, TrustedProxy};
use crate::metrics::Metrics;
use crate::package::Packages;
use crate::symbolicate::Symbolicator;
use crate::upload::Uploads;
use log::Peer;

/// Everything a handler may reach, built once at start-up.
pub struct App {
    pub cache: Arc<Cache>,
    pub uploads: Arc<Uploads>,
    pub packages: Arc<Packages>,
    pub keys: Arc<ApiKeys>,
    pub metrics: Arc<Metrics>,
    pub symbolicator: Arc<Symbolicator>,
    pub ledger: Arc<crate::missing::Ledger>,
    pub store_totals: status::StoreTotals,
    pub path_prefix: String,
    pub public_url: String,
    pub v1_path: String,
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl App {
    pub fn new(
        config: &Config,
        cache: Arc<Cache>,
        uploads: Arc<Uploads>,
        packages: Arc<Packages>,
        keys: Arc<ApiKeys>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            symbolicator: Symbolicator::new(cache.clone(), &config.symbolication),
            ledger: crate::missing::Ledger::new(cache.store().clone(), &config.missing),
            store_totals: Default::default(),
            cache,
            uploads,
            packages,
            keys,
            metrics,
            path_prefix: config.server.path_prefix.clone(),
            public_url: config.upload.public_url.clone(),
            v1_path: config.upload.v1_path.clone(),
            trusted_proxies: config.trusted_proxies()?,
        })
    }

    /// `path` below `server.path_prefix`, starting with `/`; `None` outside it. The prefix
    /// is whole segments: `/sym` is the prefix of `/sym/a.pdb/…`, not of `/syma.pdb/…`.
    pub fn below_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.path_prefix.as_str())
            .filter(|rest| rest.starts_with('/'))
    }
}

pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Bound {
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| format!("http://{a}"))
                .unwrap_or_else(|_| "tcp".into()),
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Binds every configured address. A stale UNIX socket file is removed first; a path that
/// is not a socket, or a socket another process still answers on, is an error.
pub async fn bind(config: &Config) -> anyhow::Result<Vec<Bound>> {
    let mode = config.unix_socket_mode()?;
    let mut bound = Vec::new();
    for addr in config.listen_addrs() {
        match addr {
            ListenAddr::Tcp(a) => bound
                .push(Bound::Tcp(listen_tcp(a).with_context(|| {
                    format!("cannot listen on {a} (server.listen / --listen)")
                })?)),
            ListenAddr::Unix(path) => {
                remove_stale_socket(&path).await?;
                let l = UnixListener::bind(&path).with_context(|| {
                    format!(
                        "cannot listen on unix:{} (server.listen / --listen)",
                        path.display()
                    )
                })?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("cannot set permissions of {}", path.display()))?;
                bound.push(Bound::Unix(l, path));
            }
        }
    }
    Ok(bound)
}

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`): connections
/// past `server.max_connections` wait there. tokio's 128 made a burst of a few hundred new
/// connections wait a SYN retransmit, a second (break-it pass: 800 at once took 1.1 s over
/// TCP, 0.1 s over a UNIX socket, whose backlog was already the kernel's cap).
const BACKLOG: u32 = 4096;

fn listen_tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std and tokio bind: a restart reuses the port while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it (choose another path in server.listen)",
            path.display()
        );
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        bail!("another server is listening on unix:{}", path.display());
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove stale socket {}", path.display()))
}

/// hyper's limit on a request's headers when none is set (`hyper::server::conn::http1::
/// Builder::max_headers`), and `server.max_headers`' default.
pub const HYPER_MAX_HEADERS: usize = 100;

/// What a connection may cost: read from `[server]`.
#[derive(Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub grace: Duration,
}

impl ConnLimits {
    pub fn from_config(c: &Config) -> Self {
        Self {
            header_read_timeout: c.server.header_read_timeout,
            idle_timeout: c.server.idle_timeout,
            max_headers: c.server.max_headers,
            max_header_bytes: c.server.max_header_bytes.as_u64() as usize,
            grace: c.server.shutdown_grace,
        }
    }
}

/// Serves until `shutdown` is cancelled, then lets in-flight responses run for their grace
/// period. At most `max_connections` connections are served at once, over all listeners,
/// on `workers` threads (0: one per core; see [`workers`]).
pub async fn serve(
    front: Front,
    listeners: Vec<Bound>,
    shutdown: CancellationToken,
    limits: ConnLimits,
    max_connections: usize,
    workers: usize,
) -> anyhow::Result<()> {
    let workers = Arc::new(workers::Workers::start(
        workers,
        MAX_BLOCKING_THREADS,
        &front.app.metrics,
    )?);
    let cache = front.app.cache.clone();
    let sockets: Vec<PathBuf> = listeners
        .iter()
        .filter_map(|l| match l {
            Bound::Unix(_, p) => Some(p.clone()),
            Bound::Tcp(_) => None,
        })
        .collect();
    let shared = accept::Shared {
        front,
        shutdown,
        limits,
        slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
        workers: workers.clone(),
        accept_failed: Default::default(),
        stopped_at: Default::default(),
    };
    let loops = accept::start(listeners, &shared)?;
    for l in loops {
        let _ = l.await;
    }
    // Downloads in progress may commit until the grace ends, counted from the shutdown.
    let deadline = shared
        .stopped_at
        .get()
        .copied()
        .unwrap_or_else(std::time::Instant::now)
        + shared.limits.grace;
    // Idle connections closed when the shutdown began: what is left ran past its grace.
    let cut = workers.open_connections();
    if cut > 0 {
        let grace = shared.limits.grace;
        tracing::warn!(
            "shutdown grace period ({grace:?}) over; closing {cut} connections still open \
             (server.shutdown_grace)"
        );
    }
    drop(shared);
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    // Fills run on the workers' runtimes: they commit while the workers still run.
    cache.wait_for_fills(deadline).await;
    if let Some(w) = Arc::into_inner(workers) {
        w.stop().await;
    }
    Ok(())
}

/// Threads of all blocking pools together: file and database work. Under hundreds of
/// connections tokio would grow a pool to 512 threads, each with its own stack and malloc
/// arena; 64 keep the disk busy without that memory.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// The reply to one request: a download from its handler, anything else from the router.
///
/// Boxed: hyper moves the request's future a few times before it first polls it, and a
/// handler's future is kilobytes (memcpy was ~10 % of a remembered 404's instructions; one
/// allocation costs far less).
fn answer(
    front: &Front,
    peer: &Peer,
    mut req: http::Request<hyper::body::Incoming>,
) -> Either<Ready<log::Reply>, BoxFuture<'static, log::Reply>> {
    let Some(direct) = front.direct(req.method(), req.uri().path()) else {
        req.extensions_mut().insert(peer.clone());
        let routed = front.router.clone().oneshot(req).map(|r| match r {
            Ok(r) => log::Reply::from(r),
            Err(never) => match never {},
        });
        return Either::Right(routed.boxed());
    };
    let (parts, _body) = req.into_parts();
    let mut reply = direct.handle(front.app.clone(), parts).boxed();
    // Polled once now, inside hyper's call of the service. Most downloads are answered on
    // their first poll (a hit, a remembered miss), and the request's head, which shares
    // hyper's read buffer, is then gone before hyper reads the connection again: that read
    // reuses the buffer instead of allocating a new 8 KiB one (callgrind: -680 instructions
    // a remembered 404, -560 a 10 KiB hit). A download that waits is polled again by hyper,
    // with the connection task's waker: a future wakes the waker of its latest poll.
    let mut noop = Context::from_waker(Waker::noop());
    match reply.as_mut().poll(&mut noop) {
        Poll::Ready(r) => Either::Left(ready(r)),
        Poll::Pending => Either::Right(reply),
    }
}

/// Serves one connection until it closes, idles out or the server shuts down.
async fn serve_conn<S>(stream: S, peer: Peer, front: Front, watcher: Watcher, limits: ConnLimits)
where
    S: zerocopy::Socket + Send + 'static,
{
    let activity = idle::Activity::new();
    let sendfiles = zerocopy::Sendfiles::default();
    let sent = front.app.metrics.sendfile_bytes.clone();
    let stream = zerocopy::ZeroCopyIo::new(stream, sendfiles.clone(), sent);
    let stream = idle::Tracked::new(stream, activity.clone());
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let log = log::RequestLog::begin(&front.app, &req, &peer, requests.begin());
        // HTTP/2 frames and interleaves bodies: only HTTP/1 sends files without a copy.
        let sendfiles = (req.version() < http::Version::HTTP_2).then(|| sendfiles.clone());
        answer(&front, &peer, req).map(move |mut r| {
            if let Some(s) = &sendfiles {
                r.response = s.adopt(r.response);
            }
            Ok::<_, Infallible>(log.finish(r))
        })
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        // `idle::Activity::expired` times request heads: hyper's timer also ran while a
        // keep-alive connection waited for its next request.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes);
    // At hyper's own default the header slots stay on the stack, uninitialized; set to
    // any number, even that one, hyper fills that many slots for every request (7% of
    // a remembered 404's instructions, callgrind).
    if limits.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        ended = watcher.watch(conn) => {
            if let Err(e) = ended {
                tracing::debug!("connection ended with an error: {e}");
            }
        }
        _ = activity.expired(limits.header_read_timeout, limits.idle_timeout) => {
            tracing::debug!("closing an idle connection");
        }
    }
}
