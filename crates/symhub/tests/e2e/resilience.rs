//! Upstreams that fail, hang, redirect or lie; restarts; eviction.

use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "/bar.pdb/FEDCBA98765432100123456789ABCDEF2/bar.pdb";

#[tokio::test]
async fn a_failing_upstream_is_marked_down_skipped_then_probed() {
    let bad = FakeUpstream::start().await;
    let good = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("bad", &bad.url, ""), ("good", &good.url, "")],
        "[health]\nfailure_threshold = 2\nblackout = \"1s\"",
    ));
    for i in 0..6 {
        let key = format!("/k{i}.pdb/1/k{i}.pdb");
        bad.route(&key, Behavior::Status(500));
        good.serve(&key, data(100, i));
        let r = s.get(&key).await;
        assert_eq!(
            r.status(),
            200,
            "the good upstream answers while the bad one fails"
        );
    }
    assert_eq!(bad.total_hits(), 2, "down after two failures, then skipped");
    let health = s.json("/healthz").await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(
        s.metric("symhub_upstream_down{upstream=\"bad\"}").await,
        1.0
    );

    // After the blackout one request probes it; it has recovered.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let key = "/probe.pdb/1/probe.pdb";
    bad.serve(key, data(10, 99));
    assert_eq!(s.get(key).await.status(), 200);
    assert_eq!(bad.hits(key), 1);
    let health = s.json("/healthz").await;
    assert_eq!(health["status"], "ok");
}

/// A file the upstream fails with a 5xx, asked again and again (and as its CAB), is one
/// broken object, not a broken upstream: its other files are still fetched.
#[tokio::test]
async fn one_file_failing_does_not_black_out_its_upstream() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[health]\nfailure_threshold = 2\nblackout = \"60s\"",
    ));
    let broken = "/broken.pdb/1/broken.pdb";
    up.route(broken, Behavior::Status(500));
    up.route("/broken.pdb/1/broken.pd_", Behavior::Status(500));
    for _ in 0..4 {
        assert_ne!(s.get(broken).await.status(), 200);
    }
    assert!(
        up.hits(broken) >= 4,
        "failures are not remembered as misses"
    );
    up.serve(KEY, data(100, 1));
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200, "the upstream's other files are fetched");
    assert_eq!(s.json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn a_hanging_upstream_costs_its_first_byte_timeout_and_is_not_cached() {
    let hang = FakeUpstream::start().await;
    hang.route(
        KEY,
        Behavior::Serve(Serve::bytes(data(10, 1)).delay(Duration::from_secs(30))),
    );
    let s = Symhub::start(&config_with(
        &[("hang", &hang.url, "first_byte_timeout = \"300ms\"")],
        "",
    ));
    let started = Instant::now();
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 404);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        s.get(KEY).await.headers()["x-cache"],
        "MISS",
        "a timeout is not a negative"
    );
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_by_the_idle_timeout_not_a_total_limit() {
    let up = FakeUpstream::start().await;
    let body = data(50_000, 2);
    // Slow but steady (10 pieces, 150 ms apart = 1.5 s) passes a 500 ms idle timeout...
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(10, Duration::from_millis(150))),
    );
    // ...a 2 s stall does not.
    let stall = "/stall.pdb/1/stall.pdb";
    up.route(
        stall,
        Behavior::Serve(Serve::bytes(body.clone()).drip(2, Duration::from_secs(2))),
    );
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "idle_timeout = \"500ms\"")],
        "",
    ));
    assert_eq!(s.get(KEY).await.bytes().await.unwrap(), body);
    let r = s.get(stall).await;
    assert_eq!(r.status(), 200, "headers were fine");
    assert!(
        r.bytes().await.is_err(),
        "the client sees a cut stream, not a short file"
    );
    assert!(
        s.objects().len() == 1,
        "nothing of the stalled download is cached"
    );
}

#[tokio::test]
async fn truncated_upstream_body_is_not_cached() {
    let up = FakeUpstream::start().await;
    let body = data(200_000, 3);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).cut_after(120_000)),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "cut, never short-but-complete");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.objects().is_empty());
    assert!(
        walk(&s.data_dir.join("cache/tmp")).is_empty(),
        "temp file removed"
    );

    // The next good answer works and is cached.
    up.serve(KEY, body.clone());
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(s.get(KEY).await.headers()["x-cache"], "HIT");
    assert_eq!(up.hits(KEY), 2);
}

/// A file the first upstream cuts mid-body (a mirror's size cap, a corrupt object) comes
/// whole from the next upstream at the next request, not cut again at every one: the first
/// upstream's headers always won the race before (break-it pass). The cut counts once
/// toward health, so it stays up for every other file.
#[tokio::test]
async fn a_file_cut_by_the_first_upstream_comes_from_the_next_one_after() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let body = data(200_000, 4);
    first.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).cut_after(100_000)),
    );
    second.serve(KEY, body.clone());
    let other = "/other.pdb/1/other.pdb";
    first.serve(other, data(1000, 5));
    let s = Symhub::start(&config_with(
        &[("first", &first.url, ""), ("second", &second.url, "")],
        "",
    ));
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-symhub-upstream"], "first");
    assert!(r.bytes().await.is_err(), "cut");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.get(KEY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-symhub-upstream"], "second", "{}", s.stderr());
    assert_eq!(r.bytes().await.unwrap(), body);
    // Every other file still comes from the first.
    let r = s.get(other).await;
    assert_eq!(r.headers()["x-symhub-upstream"], "first");
}

/// An upstream that does not answer a `foo.pdb` is not asked for its `foo.pd_` at once: a
/// miss of a hanging upstream costs one `first_byte_timeout`, not two (break-it pass).
#[tokio::test]
async fn a_pdb_an_upstream_did_not_answer_is_not_asked_again_as_a_cab() {
    let up = FakeUpstream::start().await;
    let cab = KEY.replace(".pdb", ".pd_").replacen(".pd_", ".pdb", 1);
    for path in [KEY, cab.as_str()] {
        up.route(
            path,
            Behavior::Serve(Serve::bytes(data(100, 6)).delay(Duration::from_secs(10))),
        );
    }
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "first_byte_timeout = \"500ms\"")],
        "",
    ));
    let started = Instant::now();
    assert_eq!(s.get(KEY).await.status(), 404);
    assert_eq!(up.hits(KEY), 1);
    assert_eq!(up.hits(&cab), 0, "{}", s.stderr());
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A cached file cut short on disk (a disk error, a hand at work) is a miss, fetched again,
/// for a small file read in one go and for a big one streamed in chunks alike: never a
/// HIT whose body is cut for every client.
#[tokio::test]
async fn a_cached_file_truncated_on_disk_is_fetched_again() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for (n, size) in [(1, 10_000), (2, 3_000_000)] {
        let key = format!("/cut{n}.pdb/ABCDEF0123456789ABCDEF0123456789{n}/cut{n}.pdb");
        let body = data(size, n);
        up.serve(&key, body.clone());
        assert_eq!(s.get(&key).await.bytes().await.unwrap(), body);
        // Committed just after the client had its last byte.
        let committed = || s.objects().into_iter().find(|(_, len)| *len == size as u64);
        let deadline = Instant::now() + Duration::from_secs(10);
        while committed().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (path, _) = committed().expect("the file is committed");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size as u64 / 3)
            .unwrap();
        let r = s.get(&key).await;
        assert_eq!(r.status(), 404, "{size} bytes: {}", s.stderr());
        let r = s.get(&key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "MISS", "{size} bytes");
        assert_eq!(
            r.bytes().await.unwrap(),
            body,
            "{size} bytes, fetched again"
        );
        assert_eq!(up.hits(&key), 2);
    }
}

#[tokio::test]
async fn redirects_are_followed_bodies_cached_and_credentials_stay_home() {
    let front = FakeUpstream::start().await;
    let blob = FakeUpstream::start().await;
    let body = data(40_000, 4);
    blob.serve("/signed/blob123", body.clone());
    front.route(
        KEY,
        Behavior::Redirect(format!("{}/signed/blob123", blob.url)),
    );
    let s = Symhub::start(&config_with(
        &[(
            "front",
            &front.url,
            "headers = { X-Api-Token = \"s3cret\" }\nforward_headers = [\"SymbolChecksum\"]",
        )],
        "",
    ));
    let r = client()
        .get(format!("{}{KEY}", s.url))
        .header("SymbolChecksum", "SHA256:abc")
        .header("Authorization", "Bearer client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the client never sees the redirect");
    assert_eq!(r.bytes().await.unwrap(), body);

    let (_, front_headers) = &front.requests()[0];
    assert_eq!(front_headers["x-api-token"], "s3cret");
    assert_eq!(front_headers["symbolchecksum"], "SHA256:abc");
    assert!(
        !front_headers.contains_key("authorization"),
        "client credentials are never forwarded"
    );
    let (_, blob_headers) = &blob.requests()[0];
    assert!(
        !blob_headers.contains_key("x-api-token"),
        "upstream credentials do not follow a redirect to another host"
    );
    assert!(!blob_headers.contains_key("symbolchecksum"));

    // The body is cached, not the Location: the signed URL may expire, the hit still works.
    blob.remove("/signed/blob123");
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!((front.hits(KEY), blob.total_hits()), (1, 1));

    // A refusal by the host redirected to (an expired signature) is no remembered miss.
    let other = "/other.pdb/0123456789ABCDEF0123456789ABCDEF1/other.pdb";
    front.route(
        other,
        Behavior::Redirect(format!("{}/signed/expired", blob.url)),
    );
    blob.route("/signed/expired", Behavior::Status(403));
    for asked in 1..=2 {
        let r = s.get(other).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-cache"], "MISS", "not NEGATIVE");
        assert_eq!(front.hits(other), asked, "asked again");
    }
}

#[tokio::test]
async fn redirect_loops_and_html_pages_are_not_symbols() {
    let up = FakeUpstream::start().await;
    up.route(KEY, Behavior::Redirect(format!("{}/loop", up.url)));
    up.route("/loop", Behavior::Redirect(format!("{}{KEY}", up.url)));
    let html = "/page.pdb/1/page.pdb";
    up.route(
        html,
        Behavior::Serve(
            Serve::bytes("<html>login</html>").content_type("text/html; charset=utf-8"),
        ),
    );
    // XHTML, as some sign-in pages are served.
    let xhtml = "/xpage.pdb/1/xpage.pdb";
    up.route(
        xhtml,
        Behavior::Serve(Serve::bytes("<html/>").content_type("application/xhtml+xml")),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    assert_eq!(s.get(xhtml).await.status(), 404);
    let started = Instant::now();
    assert_eq!(s.get(KEY).await.status(), 404);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(s.get(html).await.status(), 404);
    assert_eq!(
        s.get(html).await.headers()["x-cache"],
        "MISS",
        "not cached, not a negative"
    );
    assert!(s.objects().is_empty());
}

#[tokio::test]
async fn restart_keeps_the_cache_and_clears_temp_files() {
    let up = FakeUpstream::start().await;
    let body = data(123_456, 5);
    up.serve(KEY, body.clone());
    let mut s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    assert_eq!(s.get(KEY).await.bytes().await.unwrap(), body);
    assert_eq!(s.get("/none.pdb/1/none.pdb").await.status(), 404);
    s.kill();
    // The killed server's own temp directory, with what a crash would leave in it.
    let dead: Vec<_> = std::fs::read_dir(s.data_dir.join("cache/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dead.len(), 1, "one directory per process: {dead:?}");
    let leftover = dead[0].join("fill-leftover");
    std::fs::write(&leftover, b"half a file").unwrap();
    // Older than a directory whose owner may not have locked it yet (a minute).
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::open(&dead[0])
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    s.restart();
    assert!(
        !leftover.exists(),
        "start-up removes a dead process's temp files"
    );
    assert!(!dead[0].exists());
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(
        s.get("/none.pdb/1/none.pdb").await.headers()["x-cache"],
        "NEGATIVE"
    );
    assert_eq!(up.hits(KEY), 1);
    assert_eq!(up.hits("/none.pdb/1/none.pdb"), 1);
    assert_eq!(s.metric("symhub_cache_size_bytes").await, 123_456.0);
}

#[tokio::test]
async fn eviction_keeps_the_cache_under_max_size_least_recently_used_first() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[cache]\nmax_size = \"100 KiB\"",
    ));
    let size = 30 * 1024;
    for i in 0..10u64 {
        let key = format!("/e{i}.pdb/1/e{i}.pdb");
        up.serve(&key, data(size, 100 + i));
        assert_eq!(s.get(&key).await.bytes().await.unwrap().len(), size);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let on_disk: u64 = s.objects().iter().map(|(_, l)| l).sum();
        let reported = s.metric("symhub_cache_size_bytes").await as u64;
        if on_disk <= 100 * 1024 && reported == on_disk {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cache still {on_disk} bytes on disk, {reported} reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.metric("symhub_cache_evictions_total").await >= 7.0);
    // The newest entry survived; the oldest was evicted and is fetched again.
    assert_eq!(s.get("/e9.pdb/1/e9.pdb").await.headers()["x-cache"], "HIT");
    assert_eq!(s.get("/e0.pdb/1/e0.pdb").await.headers()["x-cache"], "MISS");

    // A file bigger than the whole cache is served, then goes alone: the others stay
    // (least recently used first once emptied the cache for it).
    let big = "/big.pdb/1/big.pdb";
    up.serve(big, data(300 * 1024, 7));
    assert_eq!(s.get(big).await.bytes().await.unwrap().len(), 300 * 1024);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.objects().iter().map(|(_, l)| l).sum::<u64>() > 100 * 1024 {
        assert!(Instant::now() < deadline, "the big file was never evicted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kept in ["/e9.pdb/1/e9.pdb", "/e0.pdb/1/e0.pdb"] {
        assert_eq!(s.get(kept).await.headers()["x-cache"], "HIT", "{kept}");
    }
}

/// A miss whose upstreams could not answer says which and how in its log line (not the same
/// words as a real 404), and is not remembered.
#[tokio::test]
async fn a_miss_names_the_upstreams_that_failed_and_how() {
    let (ok, broken) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let path = "/failing.pdb/0123456789ABCDEF0123456789ABCDEF1/failing.pdb";
    broken.route(path, Behavior::Status(503));
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = Symhub::start(&config_with(
        &[
            ("ok", &ok.url, ""),
            ("broken", &broken.url, ""),
            ("dead", &dead, ""),
        ],
        "[symbolication]\non_demand = false\n",
    ));
    let r = s.get(path).await;
    assert_eq!(r.status(), 404);
    let log = s.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("failing.pdb") && l.contains("outcome="))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("broken: status 503") && line.contains("dead: unreachable"),
        "{line}"
    );
    assert!(!line.contains("not found upstream"), "{line}");
    // Not remembered: asked again.
    assert_eq!(s.get(path).await.status(), 404);
    assert_eq!(ok.hits(path), 2);
    // A real 404 from every upstream reads differently.
    let gone = "/gone.pdb/0123456789ABCDEF0123456789ABCDEF1/gone.pdb";
    let s = Symhub::start(&config_with(&[("ok", &ok.url, "")], ""));
    assert_eq!(s.get(gone).await.status(), 404);
    let log = s.stderr();
    assert!(
        log.contains("not found upstream") && !log.contains("unreachable"),
        "{log}"
    );
}

/// A data dir deleted (or unmounted) under the running server fails every miss: `/healthz`
/// says `degraded`, so a load balancer or a monitor sees it (break-it pass: it said `ok`).
#[tokio::test]
async fn healthz_is_degraded_when_the_data_dir_goes() {
    let s = Symhub::start("upstream = []\n");
    let health = || async {
        let r = s.get_now("/healthz").await;
        serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap()
    };
    assert_eq!(health().await["status"], "ok");
    std::fs::remove_dir_all(&s.data_dir).unwrap();
    let v = health().await;
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["data_dir_ok"], false, "{v}");
}
