//! The web console: three static files embedded in the binary, served at `<prefix>/ui/`
//! (`/` redirects there), that call the JSON API with the key the user enters (kept in the
//! tab's session storage). No CDN, font or script from elsewhere: it works with the server
//! offline, and its Content-Security-Policy allows nothing but this origin.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::header;
use std::sync::Arc;

use super::log::Noted;
use super::App;

const INDEX: &str = include_str!("../console/assets/index.html");
const SCRIPT: &str = include_str!("../console/assets/app.js");
const STYLE: &str = include_str!("../console/assets/app.css");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Embedded in the binary: a new version must be fetched, not a cached one used.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
        .noted("console")
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `/` and `/ui`: to the console.
pub async fn to_console(State(app): State<Arc<App>>) -> Response {
    Redirect::to(&format!("{}/ui/", app.path_prefix))
        .into_response()
        .noted("console")
}
