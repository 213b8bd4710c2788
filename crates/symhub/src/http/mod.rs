//! The HTTP front: listeners (TCP and UNIX sockets), the router, graceful shutdown.
//!
//! Handlers are thin: they parse the request, call a service ([`crate::cache::Cache`]), and
//! map its answer to a response. Routes: `/healthz`, `/metrics`, and every other path is a
//! symbol path (under `server.path_prefix` when one is configured).

mod api;
mod body;
pub mod json;
pub mod log;
mod ops;
mod packages;
mod symbols;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cache::Cache;
use crate::config::{Config, ListenAddr, TrustedProxy};
use crate::metrics::Metrics;
use crate::package::Packages;
use crate::upload::auth::ApiKeys;
use crate::upload::Uploads;
use log::Peer;

/// Everything a handler may reach, built once at start-up.
pub struct App {
    pub cache: Arc<Cache>,
    pub uploads: Arc<Uploads>,
    pub packages: Arc<Packages>,
    pub keys: ApiKeys,
    pub metrics: Arc<Metrics>,
    pub path_prefix: String,
    pub public_url: String,
    pub v1_path: String,
    pub blocklist: globset::GlobSet,
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl App {
    pub fn new(
        config: &Config,
        cache: Arc<Cache>,
        uploads: Arc<Uploads>,
        packages: Arc<Packages>,
        keys: ApiKeys,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut blocklist = globset::GlobSetBuilder::new();
        for pattern in &config.cache.blocklist {
            blocklist.add(globset::Glob::new(&pattern.to_lowercase())?);
        }
        Ok(Self {
            cache,
            uploads,
            packages,
            keys,
            metrics,
            path_prefix: config.server.path_prefix.clone(),
            public_url: config.upload.public_url.clone(),
            v1_path: config.upload.v1_path.clone(),
            blocklist: blocklist.build()?,
            trusted_proxies: config.trusted_proxies()?,
        })
    }
}

/// The router plus what wraps every request: the request log.
#[derive(Clone)]
pub struct Front {
    app: Arc<App>,
    router: Router,
}

pub fn front(app: Arc<App>) -> Front {
    Front {
        router: router(app.clone()),
        app,
    }
}

fn router(app: Arc<App>) -> Router {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{post, put};
    let p = app.path_prefix.clone();
    let mut r = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics));
    for v in ["", "/v1"] {
        r = r
            .route(
                &format!("{p}{v}/symbols/{{debug_file}}/{{id_action}}"),
                get(api::check_status),
            )
            .route(&format!("{p}{v}/uploads:create"), post(api::create))
            .route(
                &format!("{p}{v}/uploads/{{key_action}}"),
                post(api::complete),
            );
    }
    // Upload bodies are bounded by upload.max_size as they stream, not by axum's default.
    r.route(
        &format!("{p}/_upload/{{upload_key}}/{{token}}"),
        put(api::put).layer(DefaultBodyLimit::disable()),
    )
    .route(
        &format!("{p}{}", app.v1_path),
        post(api::v1).layer(DefaultBodyLimit::disable()),
    )
    .route(&format!("{p}/api/symbols"), get(api::list))
    .route(
        &format!("{p}/api/packages"),
        get(packages::list)
            .post(packages::add)
            .layer(DefaultBodyLimit::disable()),
    )
    .route(
        &format!("{p}/api/packages/{{name}}"),
        get(packages::show)
            .put(packages::put)
            .delete(packages::remove)
            .layer(DefaultBodyLimit::disable()),
    )
    .fallback(symbols::route)
    .with_state(app)
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
            ListenAddr::Tcp(a) => {
                bound.push(Bound::Tcp(TcpListener::bind(a).await.with_context(
                    || format!("cannot listen on {a} (server.listen / --listen)"),
                )?))
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(&path).await?;
                let l = UnixListener::bind(&path)
                    .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("cannot set permissions of {}", path.display()))?;
                bound.push(Bound::Unix(l, path));
            }
        }
    }
    Ok(bound)
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

/// Serves until `shutdown` is cancelled, then lets in-flight responses run for `grace`.
pub async fn serve(
    front: Front,
    listeners: Vec<Bound>,
    shutdown: CancellationToken,
    header_read_timeout: Duration,
    grace: Duration,
) {
    let mut loops = Vec::new();
    let mut sockets = Vec::new();
    for l in listeners {
        if let Bound::Unix(_, p) = &l {
            sockets.push(p.clone());
        }
        loops.push(tokio::spawn(accept_loop(
            l,
            front.clone(),
            shutdown.clone(),
            header_read_timeout,
            grace,
        )));
    }
    for l in loops {
        let _ = l.await;
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
}

async fn accept_loop(
    listener: Bound,
    front: Front,
    shutdown: CancellationToken,
    header_read_timeout: Duration,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok(Conn::Tcp(s, addr)) => {
                let _ = s.set_nodelay(true);
                spawn_conn(
                    s,
                    Peer::Tcp(addr),
                    &front,
                    graceful.watcher(),
                    header_read_timeout,
                )
            }
            Ok(Conn::Unix(s)) => spawn_conn(
                s,
                Peer::Unix,
                &front,
                graceful.watcher(),
                header_read_timeout,
            ),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ({grace:?}) over; closing remaining connections");
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Bound) -> std::io::Result<Conn> {
    match l {
        Bound::Tcp(l) => l.accept().await.map(|(s, a)| Conn::Tcp(s, a)),
        Bound::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
}

fn spawn_conn<S>(
    stream: S,
    peer: Peer,
    front: &Front,
    watcher: Watcher,
    header_read_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let front = front.clone();
    tokio::spawn(async move {
        let service =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                let log = log::RequestLog::begin(&front.app, &req);
                let response = front.router.clone().oneshot(req);
                async move { response.await.map(|r| log.finish(r)) }
            });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!("connection ended with an error: {e}");
        }
    });
}
