//! The caching proxy: misses, hits, case folding, negatives, priority, coalescing, CAB.

use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "/foo.pdb/0123456789ABCDEF0123456789ABCDEF1/foo.pdb";

#[tokio::test]
async fn miss_then_hit_serves_identical_bytes_and_asks_upstream_once() {
    let up = FakeUpstream::start().await;
    let body = data(300_000, 1);
    up.serve(KEY, body.clone());
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));

    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap(), body);

    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert!(r.headers().contains_key("etag"));
    assert!(r.headers().contains_key("last-modified"));
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = client()
        .head(format!("{}{KEY}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(up.hits(KEY), 1);
    let log = s.stderr();
    assert!(
        log.contains("outcome=\"miss\"") && log.contains("outcome=\"hit\""),
        "{log}"
    );
}

#[tokio::test]
async fn case_variants_share_one_entry() {
    let up = FakeUpstream::start().await;
    let body = data(5000, 2);
    up.serve(KEY, body.clone());
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    assert_eq!(s.get(KEY).await.bytes().await.unwrap(), body);
    for variant in [
        KEY.to_lowercase(),
        KEY.to_uppercase(),
        "/FOO.pdb/0123456789abcdef0123456789ABCDEF1/Foo.PDB".into(),
    ] {
        let r = s.get(&variant).await;
        assert_eq!(r.status(), 200, "{variant}");
        assert_eq!(r.headers()["x-cache"], "HIT", "{variant}");
        assert_eq!(r.bytes().await.unwrap(), body);
    }
    assert_eq!(up.total_hits(), 1);
    assert_eq!(s.objects().len(), 1, "stored once");
}

#[tokio::test]
async fn each_upstream_gets_its_spelling() {
    let lower = FakeUpstream::start().await;
    let symsrv = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[
            ("lower", &lower.url, "key_spelling = \"lowercase\""),
            ("symsrv", &symsrv.url, "key_spelling = \"symsrv\""),
        ],
        "",
    ));
    s.get("/Foo.Pdb/abcdef1/Foo.Pdb").await;
    assert_eq!(lower.hits("/foo.pdb/abcdef1/foo.pdb"), 1);
    assert_eq!(symsrv.hits("/Foo.Pdb/ABCDEF1/Foo.Pdb"), 1);
}

#[tokio::test]
async fn negative_entries_are_remembered_until_they_expire() {
    // A lowercasing upstream is sent the same URL for every spelling, so one miss answers
    // them all (with `as-requested`, each spelling is its own request: upstream_answers.rs).
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "key_spelling = \"lowercase\"")],
        "[cache]\nnegative_ttl = \"1s\"",
    ));
    let sent = KEY.to_lowercase();
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "MISS");
    let r = s.get(&KEY.to_lowercase()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "NEGATIVE");
    assert_eq!(up.hits(&sent), 1, "the second miss sends nothing upstream");
    let cab = format!("{}_", &sent[..sent.len() - 1]);
    assert_eq!(up.hits(&cab), 1, "the CAB form was asked once too");

    // Expiry: the file appears upstream; once the negative entry is gone, it is found.
    let body = data(1000, 3);
    up.serve(&sent, body.clone());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "HIT");
    assert_eq!(up.hits(&sent), 2);
}

/// A miss remembered under one set of upstreams is not the answer of another: after a
/// restart with the upstream that has the file added, it is asked at once (break-it pass:
/// nothing changed for `negative_ttl`, an hour by default).
#[tokio::test]
async fn a_miss_is_asked_again_when_the_upstreams_change() {
    let (without, with) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let body = data(1000, 4);
    with.serve(KEY, body.clone());
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let one = config_with(&[("first", &without.url, "")], "");
    let mut s = Symhub::start_in(&one, data_dir.clone());
    assert_eq!(s.get(KEY).await.status(), 404);
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "NEGATIVE");
    s.kill();
    // The same upstreams again: the miss is still remembered.
    let mut s = Symhub::start_in(&one, data_dir.clone());
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "NEGATIVE");
    s.kill();
    let two = config_with(
        &[("first", &without.url, ""), ("second", &with.url, "")],
        "",
    );
    let s = Symhub::start_in(&two, data_dir);
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), body);
}

#[tokio::test]
async fn forbidden_and_gone_are_negative_but_server_errors_are_not() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for (i, status) in [403u16, 410].into_iter().enumerate() {
        let key = format!("/a{i}.pdb/1/a{i}.pdb");
        up.route(&key, Behavior::Status(status));
        assert_eq!(s.get(&key).await.status(), 404);
        assert_eq!(s.get(&key).await.headers()["x-cache"], "NEGATIVE");
        assert_eq!(up.hits(&key), 1);
    }
    up.route(KEY, Behavior::Status(503));
    assert_eq!(
        s.get(KEY).await.status(),
        404,
        "a 5xx upstream is a 404 for SymSrv clients"
    );
    assert_eq!(
        s.get(KEY).await.headers()["x-cache"],
        "MISS",
        "not remembered"
    );
    assert_eq!(up.hits(KEY), 2);
}

#[tokio::test]
async fn priority_follows_configured_order_even_when_the_first_is_slower() {
    let first = FakeUpstream::start().await;
    let second = FakeUpstream::start().await;
    let (a, b) = (data(2000, 4), data(2_000_000, 5));
    first.route(
        KEY,
        Behavior::Serve(Serve::bytes(a.clone()).delay(Duration::from_millis(400))),
    );
    // The losing upstream answers at once, with a long and slow body.
    second.route(
        KEY,
        Behavior::Serve(Serve::bytes(b).drip(40, Duration::from_millis(100))),
    );
    let s = Symhub::start(&config_with(
        &[("first", &first.url, ""), ("second", &second.url, "")],
        "",
    ));
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-symhub-upstream"], "first");
    assert_eq!(r.bytes().await.unwrap(), a);
    assert_eq!(second.hits(KEY), 1, "asked concurrently");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        second.abandoned(KEY),
        1,
        "the losing download was cancelled, not finished"
    );

    // A lower-priority answer is used when the higher one says no.
    let other = "/bar.pdb/1/bar.pdb";
    let c = data(100, 6);
    second.serve(other, c.clone());
    let r = s.get(other).await;
    assert_eq!(r.headers()["x-symhub-upstream"], "second");
    assert_eq!(r.bytes().await.unwrap(), c);
}

#[tokio::test]
async fn extension_filter_keeps_requests_away_from_an_upstream() {
    let binaries = FakeUpstream::start().await;
    let all = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[
            ("bin", &binaries.url, "extensions = [\"dll\"]"),
            ("all", &all.url, ""),
        ],
        "",
    ));
    s.get(KEY).await;
    s.get("/x.dll/5F00AA1000/x.dll").await;
    // x.dll, then its CAB form x.dl_; never foo.pdb or foo.pd_.
    assert_eq!(binaries.hits("/x.dll/5F00AA1000/x.dll"), 1);
    assert_eq!(binaries.hits("/x.dll/5F00AA1000/x.dl_"), 1);
    assert_eq!(binaries.total_hits(), 2);
    assert_eq!(all.hits(KEY), 1);
}

#[tokio::test]
async fn blocklisted_keys_answer_404_without_upstream_traffic() {
    let up = FakeUpstream::start().await;
    up.serve("/mycorp.pdb/1/mycorp.pdb", data(10, 7));
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[cache]\nblocklist = [\"MyCorp*.pdb/*/*\"]",
    ));
    let r = s.get("/MYCORP.pdb/1/mycorp.pdb").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "BLOCKED");
    assert_eq!(up.total_hits(), 0);
}

#[tokio::test]
async fn fifty_concurrent_clients_share_one_slow_download_and_stream_early() {
    let up = FakeUpstream::start().await;
    let body = data(2_000_000, 8);
    // 20 pieces, 100 ms apart: the download takes about 2 s.
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(20, Duration::from_millis(100))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let url = format!("{}{KEY}", s.url);
    let started = Instant::now();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut r = client().get(&url).send().await.unwrap();
                let cache = r.headers()["x-cache"].to_str().unwrap().to_owned();
                let mut got = Vec::new();
                let mut first_byte = None;
                while let Some(chunk) = r.chunk().await.unwrap() {
                    first_byte.get_or_insert_with(Instant::now);
                    got.extend_from_slice(&chunk);
                }
                (cache, first_byte.unwrap(), got)
            })
        })
        .collect();
    let mut misses = 0;
    for c in clients {
        let (cache, first_byte, got) = c.await.unwrap();
        assert!(got == body, "every client gets the full bytes");
        misses += (cache == "MISS") as usize;
        assert!(cache == "MISS" || cache == "COALESCED", "{cache}");
        let finished = up.finished(KEY).expect("upstream finished");
        assert!(
            first_byte < finished,
            "a client started receiving before the download ended"
        );
    }
    assert_eq!(misses, 1);
    assert_eq!(up.hits(KEY), 1, "exactly one upstream request");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "HIT");
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_abort_the_download() {
    let up = FakeUpstream::start().await;
    let body = data(500_000, 12);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(10, Duration::from_millis(60))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let mut r = s.get(KEY).await;
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(up.abandoned(KEY), 0);
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(up.hits(KEY), 1);
}

#[tokio::test]
async fn head_during_a_fill_answers_from_its_headers() {
    let up = FakeUpstream::start().await;
    let body = data(100_000, 9);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(10, Duration::from_millis(150))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let url = format!("{}{KEY}", s.url);
    let get = tokio::spawn(async move {
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = client()
        .head(format!("{}{KEY}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");
    assert_eq!(r.headers()["x-cache"], "COALESCED");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "HEAD did not wait for the download"
    );
    assert_eq!(get.await.unwrap(), body);
    assert_eq!(up.hits(KEY), 1);
}

#[tokio::test]
async fn a_range_request_during_a_fill_gets_its_part_as_it_arrives() {
    let up = FakeUpstream::start().await;
    let body = data(400_000, 13);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(8, Duration::from_millis(150))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let url = format!("{}{KEY}", s.url);
    let full = tokio::spawn({
        let url = url.clone();
        async move {
            client()
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client()
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["x-cache"], "COALESCED");
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/400000");
    assert_eq!(r.bytes().await.unwrap(), body.slice(1000..2000));
    assert_eq!(full.await.unwrap(), body);
    assert_eq!(up.hits(KEY), 1);
}

#[tokio::test]
async fn range_and_conditional_requests_on_hits() {
    let up = FakeUpstream::start().await;
    let body = data(10_000, 10);
    up.serve(KEY, body.clone());
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    s.get(KEY).await.bytes().await.unwrap();
    let url = format!("{}{KEY}", s.url);

    let r = client()
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(r.bytes().await.unwrap(), body.slice(100..200));

    let r = client()
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), body.slice(9990..));

    // A suffix longer than the file is all of it (RFC 9110, 14.1.2).
    let r = client()
        .get(&url)
        .header("range", "bytes=-20000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-9999/10000");
    assert_eq!(r.bytes().await.unwrap(), body);

    let r = client()
        .get(&url)
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");
    assert_eq!(r.headers()["x-cache"], "HIT");

    let etag = s.get(KEY).await.headers()["etag"].clone();
    let r = client()
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag);
    let r = client()
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // If-Range with a stale validator: the whole file.
    let r = client()
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn cab_only_upstream_yields_the_plain_file() {
    let up = FakeUpstream::start().await;
    // Compressible but not trivial: the CAB really is smaller than its content.
    let content: Vec<u8> = (0..400_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
        .collect();
    let cab = make_cab("foo.pdb", &content);
    assert!(cab.len() < content.len());
    let cab_key = format!("{}_", &KEY[..KEY.len() - 1]);
    assert!(cab_key.ends_with("foo.pd_"));
    up.serve(&cab_key, cab.clone());
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));

    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        content.len().to_string().as_str()
    );
    assert_eq!(r.bytes().await.unwrap(), content);
    assert_eq!(up.hits(KEY), 1, "the plain name was tried first");
    assert_eq!(up.hits(&cab_key), 1);
    // Both the plain file and the CAB itself are now cached.
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "HIT");
    let r = s.get(&cab_key).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), cab);
    assert_eq!(up.total_hits(), 2);
}

#[tokio::test]
async fn cab_unpacking_can_be_turned_off_and_is_bounded() {
    let up = FakeUpstream::start().await;
    let content = vec![7u8; 50_000];
    let cab_key = "/foo.pdb/1/foo.pd_";
    up.serve(cab_key, make_cab("foo.pdb", &content));
    let off = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[cache]\ndecompress_cab = false",
    ));
    assert_eq!(off.get("/foo.pdb/1/foo.pdb").await.status(), 404);
    assert_eq!(up.hits(cab_key), 0);
    let small = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[cache]\nmax_unpacked_size = \"10 KiB\"",
    ));
    assert_eq!(small.get("/foo.pdb/1/foo.pdb").await.status(), 404);
    assert!(
        small.objects().len() <= 1,
        "only the CAB itself may be cached"
    );
    // A broken CAB is a miss, not a crash.
    up.serve("/bad.pdb/1/bad.pd_", data(3000, 11));
    assert_eq!(small.get("/bad.pdb/1/bad.pdb").await.status(), 404);
    assert_eq!(small.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn file_ptr_is_proxied_as_is() {
    let up = FakeUpstream::start().await;
    let ptr = "/foo.pdb/1/file.ptr";
    up.serve(ptr, "PATH:\\\\server\\share\\foo.pdb");
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let r = s.get(ptr).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "PATH:\\\\server\\share\\foo.pdb");
}
