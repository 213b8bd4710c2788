//! Which code answers a request: the API's and the console's routes (axum), and every other
//! path, a symbol path (SymSrv, SSQP, Breakpad keys), answered by [`symbols::handle`].
//!
//! A symbol path is recognized before the router by its first segment, which no route
//! claims: the router's matching and the plumbing around its handlers were a tenth of the
//! instructions of a remembered 404 (callgrind). The claimed segments are recorded as the
//! routes are added, so a new route can never be shadowed by the fast path.

use std::sync::Arc;

use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use axum::Router;

use super::log::Reply;
use super::{
    api, console, debuginfod, entries, error, files, keys, missing, ops, packages, status,
    symbolicate, symbols, transactions, App,
};

/// The router plus what wraps every request: the request log.
#[derive(Clone)]
pub struct Front {
    pub(super) app: Arc<App>,
    pub(super) router: Router,
    claimed: Arc<Claimed>,
}

pub fn front(app: Arc<App>) -> Front {
    let (router, claimed) = router(app.clone());
    Front {
        router,
        app,
        claimed: Arc::new(claimed),
    }
}

/// The first path segment of debuginfod's routes (`/buildid/<id>/<artifact>`).
const DEBUGINFOD_ROOT: &str = "buildid";

/// A request answered without the router: a download whose handler the path alone names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direct {
    /// A symbol path: [`symbols::handle`].
    Symbols,
    /// `GET|HEAD /buildid/…`: [`debuginfod::handle`].
    Debuginfod,
}

impl Direct {
    pub(super) async fn handle(self, app: Arc<App>, req: http::request::Parts) -> Reply {
        let (method, uri, headers) = (&req.method, &req.uri, &req.headers);
        match self {
            Direct::Symbols => symbols::handle(app, method, uri, headers).await,
            Direct::Debuginfod => debuginfod::handle(app, method, uri, headers).await,
        }
    }
}

impl Front {
    /// See [`Claimed::direct`].
    pub(super) fn direct(&self, method: &http::Method, path: &str) -> Option<Direct> {
        self.claimed.direct(method, path)
    }
}

/// The first path segments (below the prefix) that some route starts with.
pub(super) struct Claimed {
    prefix: String,
    /// A dozen names, without repeats: a scan that compares lengths first rejects a symbol
    /// path's segment faster than a tree walk comparing strings.
    first_segments: Vec<Box<str>>,
}

impl Claimed {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            first_segments: Vec::new(),
        }
    }

    /// Records the first segment of a route's path (`{prefix}/api/keys` claims `api`).
    fn claim(&mut self, path: &str) {
        let below = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        let first = below.trim_start_matches('/').split('/').next();
        let first = first.unwrap_or_default();
        // A route whose first segment is a parameter would claim every path.
        debug_assert!(!first.starts_with('{'), "{path}");
        if !self.claims(first) {
            self.first_segments.push(first.into());
        }
    }

    /// The first segment of `path` below the prefix (`None` outside it). As sent: axum
    /// matches the raw path too.
    fn first_segment<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        let end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
        Some(&rest[..end])
    }

    fn claims(&self, first: &str) -> bool {
        self.first_segments.iter().any(|s| **s == *first)
    }

    /// Which download handler answers `path` without the router, if any:
    /// - a symbol path, one the router would only pass to its fallback: under the path
    ///   prefix, with a first segment no route claims;
    /// - a debuginfod `GET` or `HEAD` (other methods get the router's JSON 405).
    fn direct(&self, method: &http::Method, path: &str) -> Option<Direct> {
        let first = self.first_segment(path).filter(|f| !f.is_empty())?;
        if !self.claims(first) {
            return Some(Direct::Symbols);
        }
        let download = method == http::Method::GET || method == http::Method::HEAD;
        (download && first == DEBUGINFOD_ROOT).then_some(Direct::Debuginfod)
    }
}

/// A router being built, recording what each route claims.
struct Routes {
    router: Router<Arc<App>>,
    claimed: Claimed,
}

impl Routes {
    fn new(prefix: &str) -> Self {
        Self {
            router: Router::new(),
            claimed: Claimed::new(prefix),
        }
    }

    fn route(mut self, path: &str, handler: MethodRouter<Arc<App>>) -> Self {
        self.claimed.claim(path);
        self.router = self.router.route(path, handler);
        self
    }

    fn finish(self, app: Arc<App>) -> (Router, Claimed) {
        let router = self
            .router
            .fallback(symbols::route)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(app);
        (router, self.claimed)
    }
}

fn router(app: Arc<App>) -> (Router, Claimed) {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{post, put};
    let p = app.path_prefix.clone();
    let mut r = Routes::new(&p)
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
    .route(&format!("{p}/api/symbols"), get(entries::search))
    .route(
        &format!("{p}/api/symbols/{{*key}}"),
        get(entries::show).delete(entries::delete),
    )
    .route(
        &format!("{p}/api/files/{{name}}"),
        put(files::put).layer(DefaultBodyLimit::disable()),
    )
    .route(&format!("{p}/api/files/missing"), post(files::missing))
    .route(
        &format!("{p}/{DEBUGINFOD_ROOT}/{{*rest}}"),
        get(debuginfod::route),
    )
    .route(
        &format!("{p}/api/sources/{{*rest}}"),
        put(api::put_source).layer(DefaultBodyLimit::disable()),
    )
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
    .route(
        &format!("{p}/api/transactions"),
        get(transactions::list)
            .post(transactions::create)
            .delete(transactions::delete_matching),
    )
    .route(
        &format!("{p}/api/transactions/{{id}}"),
        get(transactions::show).delete(transactions::delete),
    )
    .route(&format!("{p}/api/status"), get(status::status))
    .route(&format!("{p}/api/whoami"), get(keys::whoami))
    .route(&format!("{p}/ui/"), get(console::index))
    .route(&format!("{p}/ui/app.js"), get(console::script))
    .route(&format!("{p}/ui/app.css"), get(console::style))
    .route(&format!("{p}/ui"), get(console::to_console))
    .route(
        if p.is_empty() { "/" } else { &p },
        get(console::to_console),
    )
    .route(&format!("{p}/api/keys"), get(keys::list).post(keys::create))
    .route(
        &format!("{p}/api/keys/{{name}}"),
        axum::routing::delete(keys::revoke),
    )
    .route(&format!("{p}/api/missing"), get(missing::list))
    .route(
        &format!("{p}/api/missing/{{*key}}"),
        axum::routing::delete(missing::forget),
    )
    .route(
        &format!("{p}/symbolicate/v5"),
        post(symbolicate::v5).options(symbolicate::preflight),
    )
    .route(
        &format!("{p}/api/minidump"),
        post(symbolicate::minidump).layer(DefaultBodyLimit::disable()),
    )
    // Under /api/ every path is an API path: an unknown one is the API's JSON 404, never a
    // symbol lookup.
    .route(
        &format!("{p}/api/{{*rest}}"),
        axum::routing::any(api_not_found),
    )
    .finish(app)
}

async fn api_not_found(method: http::Method, uri: http::Uri) -> axum::response::Response {
    error::ApiError::NotFound("not_found", format!("no API route {method} {}", uri.path()))
        .into_response()
}

/// A route that exists, asked with a method it does not take: the API's JSON error, not
/// an empty body.
async fn method_not_allowed(method: http::Method, uri: http::Uri) -> axum::response::Response {
    error::ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{Claimed, Direct};
    use http::Method;

    #[test]
    fn paths_a_route_starts_with_are_the_routers_the_rest_are_symbol_paths() {
        for prefix in ["", "/symbols-root"] {
            let mut c = Claimed::new(prefix);
            for route in [
                "/api/keys",
                "/api/{*rest}",
                "/ui/",
                "/buildid/{*rest}",
                "",
                "/v1/x",
            ] {
                c.claim(&format!("{prefix}{route}"));
            }
            let get = |path: &str| c.direct(&Method::GET, &format!("{prefix}{path}"));
            for router in [
                "/api/keys",
                "/api/nothing/here",
                "/ui/",
                "/ui",
                "/",
                "//x/y/z",
                "",
            ] {
                assert_eq!(get(router), None, "{prefix} {router:?}");
            }
            for symbol in [
                "/foo.pdb/ABC1/foo.pdb",
                "/API/keys",
                "/%61pi/keys",
                "/apix/y/z",
            ] {
                assert_eq!(get(symbol), Some(Direct::Symbols), "{prefix} {symbol}");
            }
            let debuginfo = format!("{prefix}/buildid/ab/debuginfo");
            assert_eq!(get("/buildid/ab/debuginfo"), Some(Direct::Debuginfod));
            assert_eq!(
                c.direct(&Method::HEAD, &debuginfo),
                Some(Direct::Debuginfod)
            );
            assert_eq!(
                c.direct(&Method::POST, &debuginfo),
                None,
                "the router's 405"
            );
            if !prefix.is_empty() {
                assert_eq!(c.direct(&Method::GET, "/foo.pdb/ABC1/foo.pdb"), None);
            }
        }
    }
}
