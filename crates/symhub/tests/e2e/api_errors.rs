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
