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

/// Every route symhub serves below `server.path_prefix` besides its root and
/// `upload.v1_path`, spelt as axum spells it. [`Routes::route`] checks that each route it
/// adds is here or in [`UNPREFIXED`] (in debug builds, so every test run), so that the
/// config's validation, which asks [`v1_path_taken`] and [`prefix_taken`] before the router
/// exists, knows them all: axum panics on two handlers for one method and path.
const PREFIXED: &[&str] = &[
    "/symbols/{debug_file}/{id_action}",
    "/v1/symbols/{debug_file}/{id_action}",
    "/uploads:create",
    "/v1/uploads:create",
    "/uploads/{key_action}",
    "/v1/uploads/{key_action}",
    "/_upload/{upload_key}/{token}",
    "/api/symbols",
    "/api/symbols/{*key}",
    "/api/files/{name}",
    "/api/files/missing",
    "/buildid/{*rest}",
    "/api/sources/{*rest}",
    "/api/packages",
    "/api/packages/{name}",
    "/api/transactions",
    "/api/transactions/{id}",
    "/api/status",
    "/api/whoami",
    "/ui/",
    "/ui/app.js",
    "/ui/app.css",
    "/ui",
    "/api/keys",
    "/api/keys/{name}",
    "/api/missing",
    "/api/missing/{*key}",
    "/symbolicate/v5",
    "/api/minidump",
    "/api/{*rest}",
];

/// Routes outside the prefix, where load balancers and Prometheus look for them.
const UNPREFIXED: &[&str] = &["/healthz", "/metrics"];

/// Whether `path` is `route` or below it: `{x}` stands for one segment, `{*x}` for one or
/// more. Below counts too, so a configured route never sits inside one of symhub's.
fn covers(route: &str, path: &str) -> bool {
    let mut segments = path.split('/').skip(1);
    for r in route.split('/').skip(1) {
        if r.starts_with("{*") {
            return segments.next().is_some();
        }
        match segments.next() {
            Some(s) if r == s || r.starts_with('{') => {}
            _ => return false,
        }
    }
    true
}

/// The built-in route that `upload.v1_path` (below `prefix`) is or falls under, as it is
/// spelt with the prefix; `None` for a path of its own.
pub fn v1_path_taken(prefix: &str, v1_path: &str) -> Option<String> {
    let path = format!("{prefix}{v1_path}");
    UNPREFIXED
        .iter()
        .map(|r| (*r).to_owned())
        .chain(PREFIXED.iter().map(|r| format!("{prefix}{r}")))
        .find(|r| covers(r, &path))
}

/// The route outside the prefix that `server.path_prefix` is or falls under (`/metrics`):
/// the routes below the prefix move with it, but the console's address is the prefix
/// itself.
pub fn prefix_taken(prefix: &str) -> Option<&'static str> {
    UNPREFIXED.iter().copied().find(|r| covers(r, prefix))
}

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

    /// Adds one of [`PREFIXED`] or [`UNPREFIXED`], or the root.
    fn route(self, path: &str, handler: MethodRouter<Arc<App>>) -> Self {
        let prefix = self.claimed.prefix.as_str();
        debug_assert!(
            UNPREFIXED.contains(&path)
                || path.strip_prefix(prefix).is_some_and(|below| {
                    below.is_empty() || below == "/" || PREFIXED.contains(&below)
                }),
            "{path} is missing from routes::PREFIXED, which config validation reads"
        );
        self.configured(path, handler)
    }

    /// Adds a route whose path the config gives: validated against the others by
    /// [`v1_path_taken`] and [`prefix_taken`].
    fn configured(mut self, path: &str, handler: MethodRouter<Arc<App>>) -> Self {
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
    .configured(
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
    use super::{prefix_taken, v1_path_taken, Claimed, Direct};
    use http::Method;

    #[test]
    fn a_configured_path_is_refused_on_or_below_a_built_in_route_only() {
        for (prefix, v1, taken) in [
            ("", "/api/keys", Some("/api/keys")),
            ("", "/api/files/missing", Some("/api/files/{name}")),
            ("", "/api/anything/else", Some("/api/{*rest}")),
            ("", "/v1/uploads:create", Some("/v1/uploads:create")),
            ("", "/metrics/x", Some("/metrics")),
            ("/s", "/api/keys", Some("/s/api/keys")),
            ("/s", "/healthz", None),
            ("", "/symupload", None),
            ("", "/v1/symupload", None),
            ("", "/api", None),
            ("", "/symbols/x", None),
        ] {
            assert_eq!(v1_path_taken(prefix, v1).as_deref(), taken, "{prefix} {v1}");
        }
        assert_eq!(prefix_taken("/metrics"), Some("/metrics"));
        assert_eq!(prefix_taken("/healthz/x"), Some("/healthz"));
        for own in ["", "/symbols", "/api", "/ui", "/healthzz"] {
            assert_eq!(prefix_taken(own), None, "{own}");
        }
    }

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
