//! Named keys, uploader names and retention on a shared store (bucket + PostgreSQL, two
//! instances and a third for retention): a key made through one instance works on the other
//! at once, a revocation through one is refused by the other within the change poll, what
//! one instance stored shows its uploader through the other, and an expired transaction is
//! removed once (by whichever instance runs retention) with shared bytes kept.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::{Cluster, KEY};
use crate::access::new_key;
use crate::retention::{open_expiring, until_deleted};
use crate::transactions::{api, open, sym, sym_path, upload_v1_in};

#[tokio::test]
async fn keys_and_uploaders_are_shared_and_revocations_reach_every_instance() {
    let Some(c) = Cluster::start() else { return };
    let ci = new_key(&c.a, KEY, "shared-ci", "upload").await;
    let reader = new_key(&c.b, KEY, "shared-reader", "download").await;
    // Made on A, used on B (and the other way round).
    let text = sym("viab", "0123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(
        upload_v1_in(&c.b, &ci, &text, None).await,
        200,
        "{}",
        c.b.stderr()
    );
    let (status, who) = api(&c.a, &reader, Method::GET, "/api/whoami", None).await;
    assert_eq!((status, &who["name"]), (200, &json!("shared-reader")));
    let (_, entry) = api(
        &c.a,
        KEY,
        Method::GET,
        &format!("/api/symbols{}", sym_path(&text)),
        None,
    )
    .await;
    assert_eq!(entry["uploader"], "shared-ci", "{entry}");
    // Search through the other instance finds it by debug file.
    let (_, found) = api(&c.a, &reader, Method::GET, "/api/symbols?q=viab", None).await;
    assert_eq!(found["symbols"][0]["uploader"], "shared-ci", "{found}");
    // B has just used the key (and remembers it); A revokes it.
    let (status, _) = api(&c.b, &ci, Method::GET, "/api/whoami", None).await;
    assert_eq!(status, 200);
    let (status, _) = api(&c.a, KEY, Method::DELETE, "/api/keys/shared-ci", None).await;
    assert_eq!(status, 200);
    let revoked = Instant::now();
    loop {
        let (status, v) = api(&c.b, &ci, Method::GET, "/api/whoami", None).await;
        if status == 403 {
            assert_eq!(v["error"], "key_revoked");
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "B still takes a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "revocation through A seen by B after {:?}",
        revoked.elapsed()
    );
    let (_, list) = api(&c.b, KEY, Method::GET, "/api/keys", None).await;
    let states: Vec<_> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["source"] == "store")
        .map(|k| (k["name"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("shared-ci", "revoked"), ("shared-reader", "active")]
    );
}

#[tokio::test]
async fn retention_removes_an_expired_run_once_and_keeps_shared_bytes() {
    let Some(c) = Cluster::start() else { return };
    // A third instance that runs retention often; A and B keep the default schedule.
    let r = c.another(&c.s3.endpoint(), "\n[retention]\ninterval = \"200ms\"\n");
    let shared = sym("keep", "1123456789ABCDEF0123456789ABCDEF0", "");
    let own = sym("gone", "2123456789ABCDEF0123456789ABCDEF0", "");
    let try_run = open_expiring(&c.a, KEY, "app", "2s").await;
    let kept_run = open(&c.b, KEY, "app", "1.0").await;
    assert_eq!(upload_v1_in(&c.a, KEY, &shared, Some(try_run)).await, 200);
    assert_eq!(upload_v1_in(&c.a, KEY, &own, Some(try_run)).await, 200);
    assert_eq!(upload_v1_in(&c.b, KEY, &shared, Some(kept_run)).await, 200);
    assert_eq!(c.b.get(&sym_path(&own)).await.status(), 200);
    until_deleted(&c.b, KEY, try_run).await;
    super::until_status(&c.b, &sym_path(&own), 404).await;
    super::until_status(&c.a, &sym_path(&own), 404).await;
    let got = c.b.get(&sym_path(&shared)).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), shared);
    assert!(
        r.stderr().contains("expired transaction removed"),
        "{}",
        r.stderr()
    );
    // An admin deletes one stored key through A; B answers 404 within the change poll.
    let (status, v) = api(
        &c.a,
        KEY,
        Method::DELETE,
        &format!("/api/symbols{}", sym_path(&shared)),
        None,
    )
    .await;
    assert_eq!((status, &v["from"]), (200, &json!("store")), "{v}");
    super::until_status(&c.b, &sym_path(&shared), 404).await;
}
