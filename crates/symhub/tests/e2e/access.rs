//! Named API keys end to end on a data dir: made with the CLI (through a server, and on the
//! data dir of a running server) and the API, each route refusing a key below its scope and
//! taking one at it, revocation and expiry, Basic credentials with a named key, the uploader's
//! key name kept with what it stored, and keys never in the log. The shared-store variant is
//! `scale/access.rs`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;
use crate::transactions::{api, open, sym, sym_path, upload_v1_in};

const ADMIN: &str = "configured-admin-key";

/// `symhub key …` with these arguments: stdout, which must be a success.
pub(crate) fn key_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .arg("key")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "symhub key {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The key in `symhub key new --name …`'s output.
pub(crate) fn printed_key(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("symhub_"))
        .unwrap_or_else(|| panic!("no key in {out:?}"))
        .to_owned()
}

/// Makes a named key through the API with an admin key: the key.
pub(crate) async fn new_key(s: &Symhub, admin: &str, name: &str, scope: &str) -> String {
    let body = json!({ "name": name, "scope": scope });
    let (status, v) = api(s, admin, Method::POST, "/api/keys", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().unwrap().to_owned()
}

/// Status and `error` of one request with `key`.
async fn call(s: &Symhub, key: &str, method: Method, path: &str, body: &str) -> (u16, String) {
    let r = client()
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let error = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, error)
}

#[tokio::test]
async fn every_route_refuses_a_key_below_its_scope_and_takes_one_at_it() {
    let config = format!(
        "upstream = []\n{}require_for_downloads = true\n",
        auth_config(ADMIN)
    );
    let s = Symhub::start(&config);
    // One key made by the CLI through the server, two through the API.
    let out = key_cli(&[
        "new", "--name", "reader", "--scope", "download", "--url", &s.url, "--key", ADMIN,
    ]);
    let download = printed_key(&out);
    let upload = new_key(&s, ADMIN, "ci-windows", "upload").await;
    let admin = new_key(&s, ADMIN, "ops", "admin").await;
    let sym_key = "/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.sym";
    // (method, path, body, scope needed)
    let routes: &[(Method, &str, &str, &str)] = &[
        (Method::GET, sym_key, "", "download"),
        (
            Method::GET,
            "/buildid/0123456789abcdef0123/debuginfo",
            "",
            "download",
        ),
        (Method::GET, "/api/symbols?q=a.pdb", "", "download"),
        (
            Method::GET,
            "/api/symbols/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.sym",
            "",
            "download",
        ),
        (Method::GET, "/api/missing", "", "download"),
        (Method::GET, "/api/transactions", "", "download"),
        (Method::GET, "/api/packages", "", "download"),
        (Method::GET, "/api/whoami", "", "download"),
        (
            Method::POST,
            "/symbolicate/v5",
            r#"{"memoryMap": [], "stacks": []}"#,
            "download",
        ),
        (Method::POST, "/v1/uploads:create", "", "upload"),
        (Method::PUT, "/api/files/a.sym", "MODULE junk", "upload"),
        (
            Method::POST,
            "/api/transactions",
            r#"{"product": "app"}"#,
            "upload",
        ),
        (
            Method::DELETE,
            &format!("/api/missing{sym_key}"),
            "",
            "upload",
        ),
        (Method::DELETE, "/api/transactions/999", "", "admin"),
        (Method::DELETE, "/api/packages/nothing", "", "admin"),
        (
            Method::DELETE,
            &format!("/api/symbols{sym_key}"),
            "",
            "admin",
        ),
        (Method::GET, "/api/keys", "", "admin"),
        (Method::DELETE, "/api/keys/nobody", "", "admin"),
    ];
    let order = ["download", "upload", "admin"];
    let keys = [&download, &upload, &admin];
    for (method, path, body, need) in routes {
        let need_at = order.iter().position(|o| o == need).unwrap();
        for (at, key) in keys.iter().enumerate() {
            let (status, error) = call(&s, key, method.clone(), path, body).await;
            if at < need_at {
                assert_eq!(
                    (status, error.as_str()),
                    (403, "insufficient_scope"),
                    "{method} {path} with a {} key",
                    order[at]
                );
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} with a {} key: {status} {error}",
                    order[at]
                );
            }
        }
        let (status, _) = call(&s, "", method.clone(), path, body).await;
        assert_eq!(status, 401, "{method} {path} without a key");
    }
    // The scope is named in the refusal, so its holder knows what to ask for.
    let r = client()
        .delete(format!("{}/api/transactions/1", s.url))
        .bearer_auth(&upload)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("ci-windows") && text.contains("admin"),
        "{text}"
    );
    // An upload key adds packages, but replacing one takes keys away, as removing does:
    // an admin's, refused before its body is read, and the package is left as it was.
    let zip = |key: &str| {
        let index = crate::packages::index(&[(key, "f")]);
        crate::packages::make_zip(&[("symbol_index.json", &index), ("f", b"bytes")])
    };
    let put = |key: &str, name: &str, body: Vec<u8>| {
        client()
            .put(format!("{}/api/packages/{name}", s.url))
            .bearer_auth(key)
            .body(body)
            .send()
    };
    let (one, two) = ("one.pdb/1/one.pdb", "two.pdb/2/two.pdb");
    assert_eq!(put(&admin, "corp", zip(one)).await.unwrap().status(), 201);
    let r = put(&upload, "corp", zip(two)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("insufficient_scope"));
    let get = |path: String| {
        client()
            .get(format!("{}/{path}", s.url))
            .bearer_auth(&download)
            .send()
    };
    assert_eq!(get(one.into()).await.unwrap().status(), 200, "unchanged");
    assert_eq!(put(&upload, "ci", zip(two)).await.unwrap().status(), 201);
    assert_eq!(put(&admin, "corp", zip(two)).await.unwrap().status(), 200);
    assert_eq!(get(one.into()).await.unwrap().status(), 404);
    // Nor when the admin's package arrives while the upload key's body still does: the
    // check is made again as the package goes live.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let chunks = futures_util::stream::unfold(rx, |mut rx| async { Some((rx.recv().await?, rx)) });
    let late = client()
        .put(format!("{}/api/packages/late", s.url))
        .bearer_auth(&upload)
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let late = tokio::spawn(late);
    let trickled = zip(two);
    tx.send(Ok(trickled[..10].to_vec())).await.unwrap();
    // Past the first check (no package `late` yet), its body still arriving.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(put(&admin, "late", zip(one)).await.unwrap().status(), 201);
    tx.send(Ok(trickled[10..].to_vec())).await.unwrap();
    drop(tx);
    let r = late.await.unwrap().unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("insufficient_scope"));
    assert_eq!(get(one.into()).await.unwrap().status(), 200, "the admin's");
    let log = s.stderr();
    for k in [&download, &upload, &admin] {
        assert!(!log.contains(k.as_str()), "a key was logged");
    }
}

#[tokio::test]
async fn uploads_record_the_key_name_and_revoked_or_expired_keys_are_refused() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(ADMIN)));
    let ci = new_key(&s, ADMIN, "ci-linux", "upload").await;
    // Through sym_upload v1 alone, and into a transaction.
    let alone = sym("alone", "0123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, &ci, &alone, None).await, 200);
    let tx = open(&s, &ci, "app", "1.0").await;
    let held = sym("held", "1123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, &ci, &held, Some(tx)).await, 200);
    let (_, entry) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/symbols{}", sym_path(&alone)),
        None,
    )
    .await;
    assert_eq!(entry["uploader"], "ci-linux", "{entry}");
    assert_eq!(entry["source"], "upload");
    assert_eq!(entry["debug_file"], "alone");
    let (_, entry) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/symbols{}", sym_path(&held)),
        None,
    )
    .await;
    assert_eq!(
        (&entry["source"], &entry["transactions"]),
        (&json!("transaction"), &json!([tx]))
    );
    let (_, t) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/transactions/{tx}"),
        None,
    )
    .await;
    assert_eq!(t["transaction"]["uploader"], "ci-linux", "{t}");
    // A configured key is named by its fingerprint.
    let by_config = sym("byconfig", "2123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, ADMIN, &by_config, None).await, 200);
    let (_, entry) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/symbols{}", sym_path(&by_config)),
        None,
    )
    .await;
    assert!(
        entry["uploader"]
            .as_str()
            .unwrap()
            .starts_with("key sha256:"),
        "{entry}"
    );

    // Basic credentials carry a named key too (any user, or none).
    let r = client()
        .get(format!("{}/api/whoami", s.url))
        .basic_auth("", Some(&ci))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"name": "ci-linux", "scope": "upload"}"#
    );

    // Revoked through the CLI: refused at once, listed as revoked, its name not reusable.
    key_cli(&["revoke", "ci-linux", "--url", &s.url, "--key", ADMIN]);
    let late = sym("late", "3123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, &ci, &late, None).await, 403);
    let (status, error) = call(&s, &ci, Method::GET, "/api/whoami", "").await;
    assert_eq!((status, error.as_str()), (403, "key_revoked"));
    let body = json!({ "name": "ci-linux", "scope": "upload" });
    let (status, v) = api(&s, ADMIN, Method::POST, "/api/keys", Some(body)).await;
    assert_eq!((status, &v["error"]), (409, &json!("key_exists")));
    let listed = key_cli(&["list", "--json", "--url", &s.url, "--key", ADMIN]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let ci_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci-linux")
        .unwrap();
    assert_eq!(ci_row["state"], "revoked");
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["source"] == "config"));

    // Expiring: works until then, refused (401, so a client asks for another) after.
    let body = json!({ "name": "try-build", "scope": "upload", "expires": "2s" });
    let (status, v) = api(&s, ADMIN, Method::POST, "/api/keys", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    let short = v["key"].as_str().unwrap().to_owned();
    assert!(v["expires_at"].is_string());
    assert_eq!(
        call(&s, &short, Method::GET, "/api/whoami", "").await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, error) = call(&s, &short, Method::GET, "/api/whoami", "").await;
    assert_eq!((status, error.as_str()), (401, "key_expired"));
    // Bad requests name what is wrong.
    for (body, code) in [
        (json!({ "name": "x y", "scope": "upload" }), "bad_key"),
        (json!({ "name": "..", "scope": "upload" }), "bad_key"),
        (json!({ "name": ".hidden", "scope": "upload" }), "bad_key"),
        (json!({ "name": "ok", "scope": "root" }), "bad_scope"),
        (
            json!({ "name": "ok", "scope": "upload", "expires": "soon" }),
            "bad_expiry",
        ),
        // Every expiry is a date every client can print, and a real time from now.
        (
            json!({ "name": "ok", "scope": "upload", "expires": "999999999d" }),
            "bad_expiry",
        ),
        (
            json!({ "name": "ok", "scope": "upload", "expires": "1ns" }),
            "bad_expiry",
        ),
    ] {
        let (status, v) = api(&s, ADMIN, Method::POST, "/api/keys", Some(body)).await;
        assert_eq!((status, &v["error"]), (400, &json!(code)), "{v}");
    }
    let body = json!({ "product": "p", "expires": "999999999d" });
    let (status, v) = api(&s, ADMIN, Method::POST, "/api/transactions", Some(body)).await;
    assert_eq!((status, &v["error"]), (400, &json!("bad_expiry")), "{v}");
    let (status, list) = api(&s, ADMIN, Method::GET, "/api/keys", None).await;
    assert_eq!(status, 200, "the listing still works: {list}");
    // Names are unique whatever their case; a configured key is not revoked here.
    let body = json!({ "name": "CI-Linux", "scope": "upload" });
    let (status, v) = api(&s, ADMIN, Method::POST, "/api/keys", Some(body)).await;
    assert_eq!((status, &v["error"]), (409, &json!("key_exists")), "{v}");
    let config_name = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["source"] == "config")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/keys/{}", config_name.replace(' ', "%20"));
    let (status, v) = api(&s, ADMIN, Method::DELETE, &path, None).await;
    assert_eq!(
        (status, &v["error"]),
        (400, &json!("configured_key")),
        "{v}"
    );
    // Unknown API paths are the API's JSON 404, not symbol lookups.
    let (status, v) = api(&s, ADMIN, Method::GET, "/api/no-such-thing", None).await;
    assert_eq!((status, &v["error"]), (404, &json!("not_found")));
}

#[tokio::test]
async fn keys_made_or_revoked_on_the_data_dir_reach_a_running_server() {
    // No configured key: the first admin key is made on the data dir with the CLI.
    let s = Symhub::start("upstream = []\n");
    let (status, error) = call(&s, "anything", Method::POST, "/v1/uploads:create", "").await;
    assert_eq!((status, error.as_str()), (403, "uploads_disabled"));
    let data_dir = s.data_dir.to_str().unwrap().to_owned();
    let out = key_cli(&[
        "new",
        "--name",
        "first",
        "--scope",
        "admin",
        "--data-dir",
        &data_dir,
    ]);
    let first = printed_key(&out);
    // The server remembered "no key at all" for a while; a change of the store ends that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&s, &first, Method::GET, "/api/whoami", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = key_cli(&["list", "--data-dir", &data_dir]);
    assert!(
        listed.contains("first") && listed.contains("admin"),
        "{listed}"
    );
    key_cli(&["revoke", "first", "--data-dir", &data_dir]);
    let revoked_at = Instant::now();
    loop {
        let (status, error) = call(&s, &first, Method::GET, "/api/whoami", "").await;
        if status == 403 {
            assert_eq!(error, "key_revoked");
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "revocation not seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("revocation seen after {:?}", revoked_at.elapsed());
}

/// A browser sends Basic credentials it has saved with any request to the server, also from
/// another site's page (a form posted as `text/plain` needs no preflight): such requests may
/// not change anything. symhub's own console (same origin) and non-browser clients may.
#[tokio::test]
async fn changes_asked_by_another_sites_page_are_refused() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(ADMIN)));
    let host = s.url.trim_start_matches("http://").to_owned();
    let post = |origin: Option<&str>, site: Option<&str>, name: &str| {
        let mut req = client()
            .post(format!("{}/api/keys", s.url))
            .basic_auth("saved", Some(ADMIN))
            .header("content-type", "text/plain")
            .body(format!(r#"{{"name": "{name}", "scope": "admin"}}"#));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, v["error"].as_str().unwrap_or_default().to_owned())
        }
    };
    let refused = (403, "cross_site".to_owned());
    assert_eq!(post(Some("http://evil.example"), None, "a1").await, refused);
    assert_eq!(post(Some("null"), None, "a2").await, refused);
    assert_eq!(
        post(Some("http://evil.example"), Some("cross-site"), "a3").await,
        refused
    );
    assert_eq!(post(None, Some("same-site"), "a4").await, refused);
    let own = format!("http://{host}");
    assert_eq!(post(Some(&own), Some("same-origin"), "b1").await.0, 201);
    assert_eq!(
        post(None, None, "b2").await.0,
        201,
        "curl, sym_upload: no browser headers"
    );
    // Reading is not changing: a GET from anywhere is answered (CORS keeps its body from
    // the other page).
    let r = client()
        .get(format!("{}/api/whoami", s.url))
        .header("authorization", format!("BEARER {ADMIN}"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the scheme is case-insensitive too");
}
