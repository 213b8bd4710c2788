//! JSON answers of the API routes, written with exactly one space after every colon.
//!
//! Breakpad's `sym_upload` reads the v2 protocol's responses with regexes such as
//! `"status": "([^"]+)"`: compact JSON (`{"status":"FOUND"}`) makes it fail. So every API
//! answer, errors included, goes through one formatter that writes `{"a": 1, "b": "x"}`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

struct Spaced;

/// `, ` before every element but the first, of objects and arrays alike.
fn separator<W: ?Sized + std::io::Write>(w: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for Spaced {
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separator(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separator(w, first)
    }
}

pub fn to_string(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
    value
        .serialize(&mut ser)
        .expect("serializing to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

pub fn reply(status: StatusCode, value: &impl Serialize) -> Response {
    let mut r = (status, to_string(value)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"error": "<code>", "message": "<what to do>"}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    reply(
        status,
        &serde_json::json!({ "error": code, "message": message.into() }),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_space_after_each_colon() {
        let v =
            serde_json::json!({"uploadUrl": "http://h/_upload/a/b", "uploadKey": "a", "n": [1, 2]});
        let s = super::to_string(&v);
        assert_eq!(
            s,
            r#"{"n": [1, 2], "uploadKey": "a", "uploadUrl": "http://h/_upload/a/b"}"#
        );
    }
}
