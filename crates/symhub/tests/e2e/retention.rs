//! Retention on a data dir: a transaction with an expiry (`"expires"` in the API, `symhub
//! upload --expires`) is removed by the server's schedule, keeping what another live
//! transaction holds; one stored key (or a cached copy) deleted by an admin and by nobody
//! else. The shared-store variant is in `scale/access.rs`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::*;
use crate::transactions::{api, open, sym, sym_path, upload_v1_in};

const ADMIN: &str = "retention-admin";

/// Blobs in the store of a data-dir instance.
pub(crate) fn store_blobs(s: &Symhub) -> usize {
    walk(&s.data_dir.join("store/objects")).len()
}

/// Opens a transaction that expires after `expires`.
pub(crate) async fn open_expiring(s: &Symhub, key: &str, product: &str, expires: &str) -> i64 {
    let body = json!({ "product": product, "version": "try", "expires": expires });
    let (status, v) = api(s, key, Method::POST, "/api/transactions", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    assert!(v["expires_at"].is_string(), "{v}");
    v["id"].as_i64().unwrap()
}

/// Waits until transaction `id` is deleted (by retention).
pub(crate) async fn until_deleted(s: &Symhub, key: &str, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, t) = api(
            s,
            key,
            Method::GET,
            &format!("/api/transactions/{id}"),
            None,
        )
        .await;
        if t["transaction"]["state"] == "deleted" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "transaction {id} never expired: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_transaction_goes_and_what_another_holds_stays() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[retention]\ninterval = \"200ms\"\n",
        auth_config(ADMIN)
    ));
    let shared = sym("shared", "0123456789ABCDEF0123456789ABCDEF0", "");
    let own = sym("own", "1123456789ABCDEF0123456789ABCDEF0", "");
    // Uploaded outside any transaction: permanent, whatever run names it later.
    let permanent = sym("permanent", "4123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, ADMIN, &permanent, None).await, 200);
    let try_run = open_expiring(&s, ADMIN, "app", "3s").await;
    let kept_run = open(&s, ADMIN, "app", "1.0").await;
    for (text, tx) in [
        (&shared, try_run),
        (&own, try_run),
        (&shared, kept_run),
        (&permanent, try_run),
    ] {
        assert_eq!(upload_v1_in(&s, ADMIN, text, Some(tx)).await, 200);
    }
    let objects_before = store_blobs(&s);
    // Nothing goes before the expiry.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.get(&sym_path(&own)).await.status(), 200);
    until_deleted(&s, ADMIN, try_run).await;
    assert_eq!(s.get(&sym_path(&own)).await.status(), 404);
    assert_eq!(s.get(&sym_path(&permanent)).await.status(), 200);
    let r = s.get(&sym_path(&shared)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), shared);
    let (_, kept) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/transactions/{kept_run}"),
        None,
    )
    .await;
    assert_eq!(kept["transaction"]["state"], "active");
    assert_eq!(
        store_blobs(&s),
        objects_before - 1,
        "only the expired run's own bytes go"
    );
    assert!(s.stderr().contains("expired transaction removed"));
}

#[tokio::test]
async fn symhub_upload_expires_sets_the_runs_expiry() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(ADMIN)));
    let dir = tempfile::tempdir().unwrap();
    let text = sym("cli", "2123456789ABCDEF0123456789ABCDEF0", "");
    std::fs::write(dir.path().join("cli.sym"), &text).unwrap();
    upload_dir_with(
        &s.url,
        ADMIN,
        dir.path().to_owned(),
        &["--product", "try", "--expires", "28d"],
    )
    .await;
    let (_, list) = api(&s, ADMIN, Method::GET, "/api/transactions", None).await;
    let t = &list["transactions"][0];
    let expires = humantime::parse_rfc3339(t["expires_at"].as_str().unwrap()).unwrap();
    let days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs_f64()
        / 86400.0;
    assert!((27.9..28.1).contains(&days), "{t}");
    // A bad duration is refused before anything is sent.
    let out = std::process::Command::new(bin())
        .args([
            "upload",
            "--url",
            &s.url,
            "--key",
            ADMIN,
            "--expires",
            "soon",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn one_key_is_deleted_by_an_admin_and_by_nobody_else() {
    let up = FakeUpstream::start().await;
    let cached_path = "/up.pdb/0123456789ABCDEF0123456789ABCDEF1/up.pdb";
    up.serve(cached_path, data(5000, 3));
    let s = Symhub::start(&format!(
        "{}{}",
        config_with(&[("up", &up.url, "")], ""),
        auth_config(ADMIN)
    ));
    let upload_key = crate::access::new_key(&s, ADMIN, "uploader", "upload").await;
    let a = sym("dela", "3123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, ADMIN, &a, None).await, 200);
    let objects = store_blobs(&s);
    let path = format!("/api/symbols{}", sym_path(&a));
    let r = client()
        .delete(format!("{}{path}", s.url))
        .bearer_auth(&upload_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an upload key cannot delete");
    let (status, v) = api(&s, ADMIN, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["from"], &v["blob_removed"]),
        (&json!("store"), &json!(true))
    );
    assert_eq!(s.get(&sym_path(&a)).await.status(), 404);
    let (status, v) = api(&s, ADMIN, Method::DELETE, &path, None).await;
    assert_eq!((status, &v["error"]), (404, &json!("not_found")));
    assert_eq!(store_blobs(&s), objects - 1, "its bytes went with it");

    // A cached copy: removed from this instance, fetched again on the next request.
    assert_eq!(s.get(cached_path).await.status(), 200);
    s.settle().await;
    let (_, entry) = api(
        &s,
        ADMIN,
        Method::GET,
        &format!("/api/symbols{cached_path}"),
        None,
    )
    .await;
    assert_eq!(
        (&entry["source"], &entry["upstream"]),
        (&json!("cache"), &json!("up")),
        "{entry}"
    );
    let (status, v) = api(
        &s,
        ADMIN,
        Method::DELETE,
        &format!("/api/symbols{cached_path}"),
        None,
    )
    .await;
    assert_eq!((status, &v["from"]), (200, &json!("cache")), "{v}");
    assert_eq!(s.get(cached_path).await.status(), 200);
    assert_eq!(
        up.hits(cached_path),
        2,
        "asked upstream again after the removal"
    );
}
