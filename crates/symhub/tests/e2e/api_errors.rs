//! How symhub's own `/api/…` routes refuse what they cannot take: a body with a field they do
//! not know, and every other 4xx, as JSON `{"error", "message"}`. Third-party protocols
//! (Tecken's `/symbolicate/v5`) stay as lenient as their clients need.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::transactions::api;

const KEY: &str = "api-errors-key";

/// A 400 `bad_body` whose message names `field`.
fn assert_names_unknown_field(status: u16, v: &Value, field: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "bad_body", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("`{field}`")), "{v}");
}

/// A misspelt optional field (`expire` for `expires`) used to be dropped in silence: the key
/// never expired, the transaction was never removed by retention.
#[tokio::test]
async fn api_bodies_with_an_unknown_field_are_refused_naming_it() {
    let s = Symhub::start(&auth_config(KEY));
    let typo = json!({ "name": "contractor", "scope": "upload", "expire": "1d" });
    let (status, v) = api(&s, KEY, Method::POST, "/api/keys", Some(typo)).await;
    assert_names_unknown_field(status, &v, "expire");
    let (_, keys) = api(&s, KEY, Method::GET, "/api/keys", None).await;
    assert!(
        !keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "contractor"),
        "{keys}"
    );

    let typo = json!({ "product": "try-x", "expire": "1d" });
    let (status, v) = api(&s, KEY, Method::POST, "/api/transactions", Some(typo)).await;
    assert_names_unknown_field(status, &v, "expire");
    let (_, list) = api(&s, KEY, Method::GET, "/api/transactions", None).await;
    assert_eq!(list["transactions"], json!([]), "{list}");

    let typo = json!({ "files": [{ "sha256": "00", "keys": [], "derivd": [] }] });
    let (status, v) = api(&s, KEY, Method::POST, "/api/files/missing", Some(typo)).await;
    assert_names_unknown_field(status, &v, "derivd");
    let typo = json!({ "files": [], "transaction": 1 });
    let (status, v) = api(&s, KEY, Method::POST, "/api/files/missing", Some(typo)).await;
    assert_names_unknown_field(status, &v, "transaction");

    // Spelt right, the same requests are taken.
    let right = json!({ "name": "contractor", "scope": "upload", "expires": "1d" });
    let (status, v) = api(&s, KEY, Method::POST, "/api/keys", Some(right)).await;
    assert_eq!(status, 201, "{v}");
    assert!(v["expires_at"].is_string(), "{v}");
    let right = json!({ "product": "try-x", "expires": "1d" });
    let (status, v) = api(&s, KEY, Method::POST, "/api/transactions", Some(right)).await;
    assert_eq!(status, 201, "{v}");

    // Tecken's clients send fields symhub does not read; they stay welcome.
    let r = client()
        .post(format!("{}/symbolicate/v5", s.url))
        .body(r#"{"jobs": [], "from_a_newer_client": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A status and a body that must be the API's error shape.
fn json_error_of(status: u16, content_type: &str, body: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(content_type, "application/json", "{status}: {text}");
    let v: Value =
        serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty())
            && v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{status}: {v}"
    );
    (status, v)
}

async fn json_error(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    json_error_of(status, &content_type, &r.bytes().await.unwrap())
}

/// POSTs a 10 MiB body with the key, reading the answer while the body is still going out,
/// as curl does: the server answers as soon as the limit is passed and closes without
/// reading the rest, and a client that reads only once it has sent everything (reqwest)
/// fails on the closed connection instead.
fn post_huge(base_url: &str, path: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let len = 10 << 20;
    let mut conn = std::net::TcpStream::connect(base_url.strip_prefix("http://").unwrap()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = conn.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..len / chunk.len() {
            if body.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    // A reset once the answer is in ends the read as well as the end of the stream does.
    let _ = conn.read_to_end(&mut answer);
    let _ = conn.shutdown(std::net::Shutdown::Both);
    sending.join().unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{path}: no answer: {}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default();
    json_error_of(status, content_type, &answer[split + 4..])
}

/// What axum's own extractors refused (a body over the limit, a query or a path parameter
/// that does not parse) answered plain text, which a client of the API cannot read.
#[tokio::test]
async fn every_api_refusal_is_json_with_its_status() {
    let s = Symhub::start(&auth_config(KEY));
    let call = |method: Method, path: &str| {
        client()
            .request(method, format!("{}{path}", s.url))
            .bearer_auth(KEY)
    };
    for path in ["/api/keys", "/api/transactions", "/api/files/missing"] {
        let (status, v) = post_huge(&s.url, path);
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (413, "too_large"),
            "{path}"
        );
    }
    for (method, path) in [
        (Method::GET, "/api/packages/corp?limit=x"),
        (Method::POST, "/api/packages?name=corp&limit=-1"),
    ] {
        let (status, v) = json_error(call(method, path).send().await.unwrap()).await;
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (400, "bad_query"),
            "{path}"
        );
        assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
    }
    // A path parameter that is not UTF-8 once decoded.
    for (method, path) in [
        (Method::DELETE, "/api/keys/%FF"),
        (Method::GET, "/api/packages/%FF"),
        (Method::PUT, "/api/packages/%FF"),
        (Method::DELETE, "/api/packages/%FF"),
        (Method::GET, "/api/transactions/%FF"),
        (Method::DELETE, "/api/transactions/%FF"),
    ] {
        let (status, v) = json_error(call(method.clone(), path).send().await.unwrap()).await;
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (400, "bad_path"),
            "{method} {path}"
        );
    }
    // What was JSON already stays so.
    for (method, path, want) in [
        (Method::GET, "/api/transactions?limit=x", 400),
        (Method::GET, "/api/missing?limit=x", 400),
        (Method::POST, "/api/keys", 400),
        (Method::PATCH, "/api/keys", 405),
        (Method::GET, "/api/nothing", 404),
    ] {
        let (status, _) = json_error(call(method, path).send().await.unwrap()).await;
        assert_eq!(status, want, "{path}");
    }
    // Symbol paths keep their plain 404 for anything invalid.
    for path in ["/%FF/x/y", "/a.pdb/ABC/a.pdb?limit=x", "/a.pdb//a.pdb"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_ne!(
            r.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "{path}"
        );
    }
}

/// A package over `packages.max_size` is refused naming that setting, not an upload's.
#[tokio::test]
async fn a_package_too_big_names_the_package_limit() {
    let s = Symhub::start(&format!(
        "{}[packages]\nmax_size = \"1 KiB\"\n",
        auth_config(KEY)
    ));
    for declared in [true, false] {
        let body = vec![0u8; 4096];
        let body = if declared {
            reqwest::Body::from(body)
        } else {
            let chunk: Result<Vec<u8>, std::io::Error> = Ok(body);
            reqwest::Body::wrap_stream(futures_util::stream::iter([chunk]))
        };
        let r = client()
            .put(format!("{}/api/packages/corp", s.url))
            .bearer_auth(KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, v) = json_error(r).await;
        assert_eq!((status, v["error"].as_str().unwrap()), (413, "too_large"));
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("packages.max_size"), "{message}");
    }
}
