//! The store against the proxy cache and upstreams: stored files come first and are never
//! evicted, an upload wins over a download of the same key in progress, and code-id
//! requests redirect to the stored debug-id key.

use std::time::Duration;

use super::{multipart, post_v1, HELLO, HELLO_ID, KEY, V1_FIELDS};
use crate::support::*;

#[tokio::test]
async fn the_store_comes_before_the_cache_and_upstreams_and_is_never_evicted() {
    let up = FakeUpstream::start().await;
    let key = format!("/hello/{HELLO_ID}/hello.sym");
    up.serve(&key, "from the upstream");
    let mut s = Symhub::start(&format!(
        "{}[cache]\nmax_size = \"1 KiB\"\n{}",
        auth_config(KEY),
        config_with(&[("up", &up.url, "")], "")
    ));
    // Cached first from the upstream…
    assert_eq!(s.get(&key).await.text().await.unwrap(), "from the upstream");
    // …then uploaded: the store wins at once.
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get(&key).await.text().await.unwrap(), HELLO);
    // Fill the tiny cache past its bound; the store is not touched by eviction.
    for i in 0..5 {
        let k = format!("/f{i}.pdb/1/f{i}.pdb");
        up.serve(&k, data(900, i));
        s.get(&k).await.bytes().await.unwrap();
    }
    s.restart();
    let r = s.get(&key).await;
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), HELLO);
    assert_eq!(up.hits(&key), 1);
}

/// A download from an upstream that ends after an upload of the same key must not hide
/// the upload behind its older answer.
#[tokio::test]
async fn an_upload_during_a_download_of_the_same_key_wins() {
    let up = FakeUpstream::start().await;
    let key = format!("/hello/{HELLO_ID}/hello.sym");
    let slow = Serve::bytes("from the upstream, slowly").drip(5, Duration::from_millis(150));
    up.route(&key, Behavior::Serve(slow));
    let s = Symhub::start(&format!(
        "{}{}",
        auth_config(KEY),
        config_with(&[("up", &up.url, "")], "")
    ));
    let url = format!("{}{key}", s.url);
    let early = tokio::spawn(async move { client().get(url).send().await?.text().await });
    while up.hits(&key) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    // The client that asked first gets what it was being sent…
    assert_eq!(early.await.unwrap().unwrap(), "from the upstream, slowly");
    // …and once that download has committed, the upload is what everyone gets.
    let r = s.get(&key).await;
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), HELLO);
}

#[tokio::test]
async fn code_id_requests_redirect_to_the_debug_id_key() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let sym = std::fs::read(fixtures().join("windows/dump_syms_regtest64.sym")).unwrap();
    let (ct, body) = multipart(
        &[
            ("debug_file", "dump_syms_regtest64.pdb"),
            ("debug_identifier", "72E103A85CB249078B76B2E7C06257B13"),
            ("code_file", "dump_syms_regtest64.exe"),
            ("os", "windows"),
            ("cpu", "x86_64"),
        ],
        &sym,
    );
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    let r = s
        .get("/dump_syms_regtest64.exe/589DFD111A000/dump_syms_regtest64.sym")
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.sym"
    );
    let r = s.get(r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(r.bytes().await.unwrap(), sym);
    // The query comes along: a key given as `?key=` must reach the next request too.
    let r = s
        .get("/dump_syms_regtest64.exe/589DFD111A000/dump_syms_regtest64.sym?key=k1&x=%2F")
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.sym?key=k1&x=%2F"
    );
}

/// An offline command run beside the server on its data dir (as the README allows) leaves
/// the server's uploads in flight alone: opening the store once emptied all of `tmp/`, and
/// the upload being received failed with a 500 (break-it pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_command_beside_the_server_leaves_its_uploads_in_flight_alone() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let body = reqwest::Body::wrap_stream(chunks);
    let put = client()
        .put(format!("{}/api/files/hello.sym", s.url))
        .bearer_auth(KEY)
        .body(body)
        .send();
    let put = tokio::spawn(put);
    let (head, rest) = HELLO.as_bytes().split_at(HELLO.len() / 2);
    tx.send(Ok(head.to_vec())).await.unwrap();
    // The first half is in the server's temp file when the command runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data_dir = s.data_dir.clone();
    let listed = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(["key", "list", "--data-dir"])
            .arg(&data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    tx.send(Ok(rest.to_vec())).await.unwrap();
    drop(tx);
    let r = put.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let key = format!("/hello/{HELLO_ID}/hello.sym");
    assert_eq!(s.get(&key).await.text().await.unwrap(), HELLO);
}
