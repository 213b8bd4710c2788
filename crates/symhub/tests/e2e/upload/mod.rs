//! The symbol store and Breakpad uploads, driven the way Breakpad's `sym_upload` drives a
//! server (the requests it sends, in order, as captured from the real client), plus the
//! code-id redirect, listing,
//! authentication and limits.
//!
//! This module holds what the tests share: the key, a `.sym` file, and sym-upload-v1
//! multipart bodies.

mod keys;
mod listing;
mod stackwalk;
mod store;
mod v1;
mod v2;

use crate::support::*;

const KEY: &str = "KEY123";
const HELLO: &str = "MODULE Linux x86_64 37DBF1D89E79D021896EB8F060CBFF050 hello\n\
INFO CODE_ID D8F1DB379E2179D0896EB8F060CBFF0576178C03\n\
FILE 0 /src/hello.c\n\
FUNC 1139 1c 0 add\n\
1139 14 2 0\n\
PUBLIC 1000 0 _init\n";
const HELLO_ID: &str = "37DBF1D89E79D021896EB8F060CBFF050";

/// A sym-upload-v1 POST of a multipart body made by [`multipart`].
async fn post_v1(s: &Symhub, content_type: String, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "------------------------ea81cd98ae960f3a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"symbol_file\"; filename=\"hello.sym\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

const V1_FIELDS: &[(&str, &str)] = &[
    ("code_file", "hello"),
    ("cpu", "x86_64"),
    ("debug_file", "hello"),
    ("debug_identifier", HELLO_ID),
    ("os", "Linux"),
    ("version", "1.2.3.4"),
];
