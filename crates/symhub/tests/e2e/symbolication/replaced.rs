//! Symbols that change under a module: a `.sym` replaced by an upload, or deleted with its
//! transaction, must change `/symbolicate/v5` and `/api/minidump` answers as they change a
//! `GET` of the key, however recently the old file was parsed. The scale variant
//! (`scale/symbolication.rs`) uploads through one instance and asks the other.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::transactions::{api, open, upload_v1_in};

const KEY: &str = "symkey";
const MODULE: (&str, &str) = ("librep.so", "AB0000000000000000000000000000A0A");

fn sym(function: &str) -> String {
    format!(
        "MODULE Linux x86_64 {} {}\nFUNC 1000 100 0 {function}\n",
        MODULE.1, MODULE.0
    )
}

/// The function `/symbolicate/v5` on `s` names at offset 0x1010 of the module (`null`
/// when it has no symbols), and whether the module was found.
async fn function_at(s: &Symhub) -> (serde_json::Value, serde_json::Value) {
    let body = json!({"memoryMap": [[MODULE.0, MODULE.1]], "stacks": [[[0, 0x1010]]]});
    let (status, v, _) = post_json(&format!("{}/symbolicate/v5", s.url), &body.to_string()).await;
    assert_eq!(status, 200, "{v}");
    let found = v["results"][0]["found_modules"][format!("{}/{}", MODULE.0, MODULE.1)].clone();
    (v["results"][0]["stacks"][0][0]["function"].clone(), found)
}

/// Asks `s` until it names `function` (`null`: none) at the module's offset, for at most
/// `within`: at once on the instance that was written to, as soon as another instance
/// learns of the change on a shared store.
async fn until_function(s: &Symhub, function: serde_json::Value, within: Duration) {
    let started = Instant::now();
    loop {
        let (got, _) = function_at(s).await;
        if got == function {
            return;
        }
        assert!(
            started.elapsed() < within,
            "still {got} after {within:?}, not {function}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Uploads through `up`, asks `asked`: a parsed module whose `.sym` was replaced, then
/// deleted, is not used. `within`: how long `asked` may take to see a change.
pub(crate) async fn replaced_and_deleted_symbols_are_not_used(
    up: &Symhub,
    key: &str,
    asked: &Symhub,
    within: Duration,
) {
    assert_eq!(upload_v1_in(up, key, &sym("old_function"), None).await, 200);
    until_function(
        asked,
        json!("old_function"),
        within.max(Duration::from_secs(5)),
    )
    .await;
    // Parsed now: the replacement must be read again.
    assert_eq!(upload_v1_in(up, key, &sym("new_function"), None).await, 200);
    until_function(asked, json!("new_function"), within).await;
    let got = client()
        .get(format!(
            "{}/{}/{}/librep.so.sym",
            asked.url, MODULE.0, MODULE.1
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(got.contains("new_function"), "{got}");

    // The same module in a transaction that is then deleted: its symbols go with it.
    let tx = open(up, key, "rep", "1").await;
    assert_eq!(
        upload_v1_in(up, key, &sym("in_a_transaction"), Some(tx)).await,
        200
    );
    until_function(asked, json!("in_a_transaction"), within).await;
    let (status, v) = api(
        up,
        key,
        reqwest::Method::DELETE,
        &format!("/api/transactions/{tx}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    until_function(asked, serde_json::Value::Null, within).await;
    assert_eq!(function_at(asked).await.1, json!(false));
}

#[tokio::test]
async fn replaced_and_deleted_symbols_are_not_used_on_a_data_dir() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    replaced_and_deleted_symbols_are_not_used(&s, KEY, &s, Duration::ZERO).await;
}

/// The first frame's function of the fixture minidump walked by `s`.
async fn crashed_in(s: &Symhub, dump: &[u8]) -> String {
    frames(&walk_dump(s, dump).await)[0][0][1].clone()
}

/// sym-upload v1 of test_app's `.sym` to `s`.
async fn upload_test_app(s: &Symhub, text: &str) {
    let fields = [
        ("debug_file", "test_app.pdb"),
        ("debug_identifier", "5A9832E5287241C1838ED98914E9B7FF1"),
    ];
    let (ct, body) = crate::upload::multipart(&fields, text.as_bytes());
    let r = client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A minidump's stackwalk reads the same parsed modules: a replaced `.sym` shows there too.
#[tokio::test]
async fn a_minidump_is_walked_with_the_replacing_symbols() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let dump = std::fs::read(fixtures().join("breakpad/minidumps/minidump2.dmp")).unwrap();
    let path = "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";
    let original = std::fs::read_to_string(fixtures().join("breakpad/symbols").join(path)).unwrap();
    upload_test_app(&s, &original).await;
    let crash = "`anonymous namespace'::CrashFunction";
    assert_eq!(crashed_in(&s, &dump).await, crash);
    let renamed = original.replace(crash, "CrashFunction_v2");
    assert_ne!(renamed, original);
    upload_test_app(&s, &renamed).await;
    assert_eq!(crashed_in(&s, &dump).await, "CrashFunction_v2");
}
