//! Upload transactions end to end on a data dir: opened through the API, filled by
//! sym-upload v1 and v2 with `?transaction=`, listed, and deleted through the API and both
//! modes of the CLI, with real GETs showing what went (404) and what shared bytes kept
//! (200). The scale variant is `scale/transactions.rs`; these helpers serve both.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

const KEY: &str = "txkey";

/// A `.sym` of module `name`/`id`; `variant` changes its bytes, not its module.
pub(crate) fn sym(name: &str, id: &str, variant: &str) -> String {
    format!(
        "MODULE Linux x86_64 {id} {name}\nFILE 0 /src/{name}.c\nFUNC 1139 1c 0 add\n\
         1139 14 2 0\nPUBLIC 1000 0 _init{variant}\n"
    )
}

/// Where [`sym`]'s file is served.
pub(crate) fn sym_path(text: &str) -> String {
    let module: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
    let (id, name) = (module[3], module[4]);
    format!("/{name}/{id}/{name}.sym")
}

/// An API call with the key: status and JSON body.
pub(crate) async fn api(
    s: &Symhub,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{status}: {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// Opens a transaction through `s`; returns its id.
pub(crate) async fn open(s: &Symhub, key: &str, product: &str, version: &str) -> i64 {
    let body = json!({ "product": product, "version": version, "comment": "e2e run" });
    let (status, v) = api(
        s,
        key,
        reqwest::Method::POST,
        "/api/transactions",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_i64().unwrap()
}

/// sym-upload v1 of `text` into transaction `tx`: the status.
pub(crate) async fn upload_v1_in(s: &Symhub, key: &str, text: &str, tx: Option<i64>) -> u16 {
    let module: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
    let fields = [("debug_file", module[4]), ("debug_identifier", module[3])];
    let (ct, body) = crate::upload::multipart(&fields, text.as_bytes());
    let tx = tx.map(|t| format!("&transaction={t}")).unwrap_or_default();
    let r = client()
        .post(format!("{}/symupload?key={key}{tx}", s.url))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// sym-upload v2 of `text` (session created on `s`, PUT to `put_on`, completed on `s`)
/// into transaction `tx`: the `result` of `:complete`.
pub(crate) async fn upload_v2_in(
    s: &Symhub,
    put_on: &Symhub,
    key: &str,
    text: &str,
    tx: i64,
) -> String {
    let url = s.create_upload(key).await;
    let put_path = url.split_once("/_upload/").unwrap().1;
    let r = client()
        .put(format!("{}/_upload/{put_path}", put_on.url))
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upload_key = put_path.split('/').next().unwrap();
    let module: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
    let r = client()
        .post(format!(
            "{}/v1/uploads/{upload_key}:complete?key={key}&transaction={tx}",
            s.url
        ))
        .body(format!(
            "{{\"symbol_id\": {{\"debug_file\": \"{}\", \"debug_id\": \"{}\"}}, \"symbol_upload_type\": \"BREAKPAD\"}}",
            module[4], module[3]
        ))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    body["result"].as_str().unwrap_or_default().to_owned()
}

/// Polls `path` on `s` until it answers `status` (a change made elsewhere shows within the
/// change poll).
pub(crate) async fn until_status(s: &Symhub, path: &str, status: u16) {
    let start = Instant::now();
    loop {
        let got = s.get_now(path).await.status();
        if got == status {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path}: still {got} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn server() -> Symhub {
    Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)))
}

fn blob_count(s: &Symhub) -> usize {
    walk(&s.data_dir.join("store/objects")).len()
}

const ID1: &str = "11111111111111111111111111111111A";
const ID2: &str = "22222222222222222222222222222222B";
const ID3: &str = "33333333333333333333333333333333C";
const ID4: &str = "44444444444444444444444444444444D";

#[tokio::test]
async fn transactions_record_uploads_and_deletion_keeps_what_others_use() {
    use reqwest::Method as M;
    let s = server();
    let (hello, shared, world, later) = (
        sym("hello", ID1, ""),
        sym("shared", ID2, ""),
        sym("world", ID3, ""),
        sym("later", ID4, ""),
    );
    let t1 = open(&s, KEY, "app", "1.0").await;
    assert_eq!(upload_v1_in(&s, KEY, &hello, Some(t1)).await, 200);
    assert_eq!(upload_v2_in(&s, &s, KEY, &shared, t1).await, "OK");
    let t2 = open(&s, KEY, "app", "1.1").await;
    // The same bytes again: a duplicate, recorded in t2 all the same.
    assert_eq!(
        upload_v2_in(&s, &s, KEY, &shared, t2).await,
        "DUPLICATE_DATA"
    );
    assert_eq!(upload_v1_in(&s, KEY, &world, Some(t2)).await, 200);
    let t3 = open(&s, KEY, "app", "1.2").await;
    assert_eq!(upload_v1_in(&s, KEY, &later, Some(t3)).await, 200);
    // Replaced afterwards by an upload outside any transaction.
    let replacement = sym("later", ID4, " replaced");
    assert_eq!(upload_v1_in(&s, KEY, &replacement, None).await, 200);
    assert_eq!(blob_count(&s), 4);

    let (_, v) = api(&s, KEY, M::GET, "/api/transactions", None).await;
    let list = v["transactions"].as_array().unwrap();
    let counts: Vec<_> = list.iter().map(|t| t["key_count"].as_u64()).collect();
    assert_eq!(counts, [Some(2), Some(2), Some(1)], "{v}");
    let uploader = list[0]["uploader"].as_str().unwrap();
    assert!(uploader.starts_with("key sha256:") && !uploader.contains(KEY));
    assert_eq!(list[0]["comment"], "e2e run");
    let (_, v) = api(
        &s,
        KEY,
        M::GET,
        "/api/transactions?product=app&version=1.1",
        None,
    )
    .await;
    assert_eq!(v["transactions"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = api(&s, KEY, M::GET, &format!("/api/transactions/{t1}"), None).await;
    let keys: Vec<_> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].clone())
        .collect();
    assert_eq!(keys.len(), 2, "{v}");
    assert_eq!(v["transaction"]["state"], "active");

    // t1: its own file goes, the bytes t2 also recorded stay.
    let (status, v) = api(&s, KEY, M::DELETE, &format!("/api/transactions/{t1}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["deleted"][0],
        json!({ "id": t1, "keys_removed": 1, "keys_kept": 1, "blobs_removed": 1 })
    );
    assert_eq!(s.get(&sym_path(&hello)).await.status(), 404);
    assert_eq!(
        s.get(&sym_path(&shared)).await.text().await.unwrap(),
        shared
    );
    assert_eq!(blob_count(&s), 3);

    // Refusals, as JSON.
    let (status, v) = api(&s, KEY, M::DELETE, &format!("/api/transactions/{t1}"), None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("transaction_deleted"))
    );
    let (status, v) = api(&s, KEY, M::DELETE, "/api/transactions/999", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("unknown_transaction"))
    );
    let (status, v) = api(&s, KEY, M::GET, "/api/transactions/abc", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("bad_transaction"))
    );
    let (status, _) = api(&s, KEY, M::DELETE, "/api/transactions", None).await;
    assert_eq!(status, 400, "deleting everything takes a product");
    let (status, _) = api(&s, "wrong", M::GET, "/api/transactions", None).await;
    assert_eq!(status, 403);
    for body in [
        json!({ "version": "1" }),
        json!({ "product": " " }),
        json!("x"),
    ] {
        let (status, v) = api(&s, KEY, M::POST, "/api/transactions", Some(body)).await;
        assert_eq!(status, 400, "{v}");
    }
    assert_eq!(upload_v1_in(&s, KEY, &hello, Some(t1)).await, 409);
    assert_eq!(upload_v1_in(&s, KEY, &hello, Some(999)).await, 404);
    assert_eq!(
        s.get(&sym_path(&hello)).await.status(),
        404,
        "refused: not stored"
    );

    // By product and version: t2's keys, the shared one included now, go.
    let (status, v) = api(
        &s,
        KEY,
        M::DELETE,
        "/api/transactions?product=app&version=1.1",
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"][0]["keys_removed"], 2);
    assert_eq!(s.get(&sym_path(&shared)).await.status(), 404);
    assert_eq!(s.get(&sym_path(&world)).await.status(), 404);

    // t3's key was replaced since: it stays, with the newer bytes.
    let (_, v) = api(&s, KEY, M::DELETE, &format!("/api/transactions/{t3}"), None).await;
    assert_eq!(v["deleted"][0]["keys_kept"], 1, "{v}");
    assert_eq!(
        s.get(&sym_path(&later)).await.text().await.unwrap(),
        replacement
    );
    assert_eq!(blob_count(&s), 1, "only the replacement's bytes are left");
    let (_, v) = api(&s, KEY, M::GET, "/api/transactions", None).await;
    let states: Vec<_> = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["deleted"; 3], "deleted ones stay listed");
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .env_remove("SYMHUB_API_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn the_cli_lists_and_deletes_offline_and_through_the_api() {
    let s = server();
    let (one, two) = (sym("one", ID1, ""), sym("two", ID2, ""));
    let t1 = open(&s, KEY, "tool", "7").await;
    assert_eq!(upload_v1_in(&s, KEY, &one, Some(t1)).await, 200);
    let t2 = open(&s, KEY, "other", "1").await;
    assert_eq!(upload_v1_in(&s, KEY, &two, Some(t2)).await, 200);
    let data_dir = s.data_dir.to_str().unwrap().to_owned();

    // Offline, on the running server's data dir.
    let (ok, out) = cli(&["transactions", "--data-dir", &data_dir, "--product", "tool"]);
    assert!(ok, "{out}");
    assert!(out.contains("tool") && !out.contains("other"), "{out}");
    assert!(out.contains("1 transactions, 1 live"), "{out}");
    // Through the API, as JSON.
    let (ok, out) = cli(&["transactions", "--url", &s.url, "--key", KEY, "--json"]);
    assert!(ok, "{out}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{out}");

    let t1s = t1.to_string();
    let delete_t1 = [
        "delete",
        "--transaction",
        &t1s,
        "--url",
        &s.url,
        "--key",
        KEY,
    ];
    let (ok, out) = cli(&delete_t1);
    assert!(ok, "{out}");
    assert!(out.contains("1 keys removed"), "{out}");
    assert_eq!(s.get(&sym_path(&one)).await.status(), 404);
    // Again: it is gone.
    let (ok, out) = cli(&delete_t1);
    assert!(!ok && out.contains("was deleted"), "{out}");

    // Offline: the server notices within its change poll.
    let (ok, out) = cli(&["delete", "--product", "other", "--data-dir", &data_dir]);
    assert!(ok, "{out}");
    assert!(out.contains("deleted 1 transactions"), "{out}");
    until_status(&s, &sym_path(&two), 404).await;
    let (ok, out) = cli(&["delete", "--product", "nothing", "--data-dir", &data_dir]);
    assert!(!ok && out.contains("no live transaction"), "{out}");
    assert_eq!(blob_count(&s), 0);
}

/// A file the server holds only through an SSQP package is uploaded for real, by a run
/// (`symhub upload`) and by a plain upload alike: the package can go, and the release must
/// keep what it ships (break-it pass: skipped as `present`, it was 404 once the package was
/// removed, while the transaction still listed it).
#[tokio::test]
async fn a_file_held_only_by_a_package_is_uploaded_for_real() {
    use reqwest::Method as M;
    let s = server();
    let (run, plain) = (sym("inrun", ID1, ""), sym("plain", ID2, ""));
    let entries: Vec<(String, String)> = [&run, &plain]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                sym_path(t).trim_start_matches('/').to_owned(),
                format!("f{i}"),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(k, f)| (k.as_str(), f.as_str()))
        .collect();
    let index = crate::packages::index(&pairs);
    let zip = crate::packages::make_zip(&[
        ("symbol_index.json", &index),
        ("f0", run.as_bytes()),
        ("f1", plain.as_bytes()),
    ]);
    let r = client()
        .put(format!("{}/api/packages/vendor", s.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inrun.sym"), &run).unwrap();
    upload_dir_with(&s.url, KEY, dir.path().to_path_buf(), &["--product", "rel"]).await;
    assert_eq!(upload_v1_in(&s, KEY, &plain, None).await, 200);
    let (status, _) = api(&s, KEY, M::DELETE, "/api/packages/vendor", None).await;
    assert_eq!(status, 200);
    for text in [&run, &plain] {
        let r = s.get(&sym_path(text)).await;
        assert_eq!(r.status(), 200, "{}", sym_path(text));
        assert_eq!(r.text().await.unwrap(), *text);
    }
}

/// A transaction past its `expires_at` takes no more files (409 `transaction_expired`,
/// nothing stored): retention would remove them at its next pass, after a 200 (break-it
/// pass).
#[tokio::test]
async fn an_expired_transaction_takes_no_more_files() {
    use reqwest::Method as M;
    let s = server();
    let body = json!({ "product": "try", "expires": "1s" });
    let (status, v) = api(&s, KEY, M::POST, "/api/transactions", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = sym("late", ID1, "");
    let r = client()
        .put(format!("{}/api/files/late.sym?transaction={id}", s.url))
        .bearer_auth(KEY)
        .body(late.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"], "transaction_expired", "{v}");
    assert_eq!(upload_v1_in(&s, KEY, &late, Some(id)).await, 409);
    assert_eq!(s.get(&sym_path(&late)).await.status(), 404);
}
