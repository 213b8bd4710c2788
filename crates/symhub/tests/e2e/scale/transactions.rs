//! Upload transactions on a shared store: opened and filled through both instances (a v2
//! session hopping between them), the ledger in PostgreSQL and the bytes in the bucket;
//! a deletion through one instance is seen by the other within its change poll, keeps the
//! bytes another transaction recorded, and the last deletion (by the CLI, through the API)
//! empties the bucket.

use reqwest::Method as M;

use super::{Cluster, KEY};
use crate::support::*;
use crate::transactions::{api, open, sym, sym_path, until_status, upload_v1_in, upload_v2_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_span_instances_and_deletions_are_seen_by_both() {
    let Some(c) = Cluster::start() else { return };
    let hello = sym("hello", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", "");
    let shared = sym("shared", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2", "");
    let t1 = open(&c.a, KEY, "app", "1").await;
    assert_eq!(upload_v1_in(&c.a, KEY, &hello, Some(t1)).await, 200);
    // Created on B, body PUT to A, completed on B.
    assert_eq!(upload_v2_in(&c.b, &c.a, KEY, &shared, t1).await, "OK");
    let t2 = open(&c.b, KEY, "app", "2").await;
    assert_eq!(
        upload_v2_in(&c.b, &c.b, KEY, &shared, t2).await,
        "DUPLICATE_DATA"
    );
    assert_eq!(c.s3.objects("blobs").len(), 2);

    // Either instance lists both, from the shared database; the filters work on PostgreSQL.
    let (status, v) = api(&c.a, KEY, M::GET, "/api/transactions", None).await;
    assert_eq!(status, 200, "{v}: {}", c.a.stderr());
    let counts: Vec<_> = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key_count"].as_u64())
        .collect();
    assert_eq!(counts, [Some(2), Some(1)], "{v}");
    let (_, v) = api(&c.a, KEY, M::GET, "/api/transactions?version=2", None).await;
    assert_eq!(v["transactions"][0]["id"], t2, "{v}");
    let (_, v) = api(&c.b, KEY, M::GET, &format!("/api/transactions/{t1}"), None).await;
    assert_eq!(v["keys"].as_array().unwrap().len(), 2, "{v}");

    // B remembers both files before the deletion, so it has memory to forget.
    until_status(&c.b, &sym_path(&hello), 200).await;
    until_status(&c.b, &sym_path(&shared), 200).await;
    let (status, v) = api(
        &c.a,
        KEY,
        M::DELETE,
        &format!("/api/transactions/{t1}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"][0]["keys_removed"], 1, "{v}");
    assert_eq!(v["deleted"][0]["blobs_removed"], 1, "{v}");
    until_status(&c.b, &sym_path(&hello), 404).await;
    assert_eq!(
        c.b.get(&sym_path(&shared)).await.text().await.unwrap(),
        shared
    );
    assert_eq!(c.s3.objects("blobs").len(), 1, "the shared bytes stay");
    let (status, v) = api(
        &c.b,
        KEY,
        M::DELETE,
        &format!("/api/transactions/{t1}"),
        None,
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("transaction_deleted"))
    );
    assert_eq!(upload_v1_in(&c.b, KEY, &hello, Some(t1)).await, 409);

    // The CLI through A's API, by product and version.
    let out = std::process::Command::new(bin())
        .args(["delete", "--product", "app", "--version", "2"])
        .args(["--url", &c.a.url, "--key", KEY])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 keys removed"), "{text}");
    until_status(&c.b, &sym_path(&shared), 404).await;
    assert!(
        c.s3.objects("blobs").is_empty(),
        "{:?}",
        c.s3.objects("blobs")
    );
    let (_, v) = api(&c.b, KEY, M::GET, "/api/transactions?product=app", None).await;
    assert!(
        v["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "deleted"),
        "{v}"
    );
}

/// A deletion racing an upload of the same bytes into another transaction, on two
/// instances: whichever wins, the upload's transaction is live and recorded the key, so the
/// key must answer with its bytes afterwards (the ledger lock orders the two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_racing_an_upload_of_the_same_bytes_keeps_them() {
    let Some(c) = Cluster::start() else { return };
    for i in 0..8 {
        let text = sym("race", &format!("{i:032X}1"), "");
        let old = open(&c.a, KEY, "race", &format!("old{i}")).await;
        assert_eq!(upload_v1_in(&c.a, KEY, &text, Some(old)).await, 200);
        let new = open(&c.b, KEY, "race", &format!("new{i}")).await;
        let path = format!("/api/transactions/{old}");
        let (deleted, uploaded) = tokio::join!(
            api(&c.a, KEY, M::DELETE, &path, None),
            upload_v1_in(&c.b, KEY, &text, Some(new)),
        );
        assert_eq!((deleted.0, uploaded), (200, 200), "{}", deleted.1);
        for s in [&c.a, &c.b] {
            let r = s.get(&sym_path(&text)).await;
            assert_eq!(r.status(), 200, "round {i}: {}", deleted.1);
            assert_eq!(r.text().await.unwrap(), text);
        }
    }
    assert_eq!(c.s3.objects("blobs").len(), 8);
}
