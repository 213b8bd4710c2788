//! Large hits, and downloads still arriving, sent from the page cache with `sendfile(2)`
//! (HTTP/1, TCP and UNIX sockets), copied on HTTP/2 and for pages the cache no longer holds:
//! the bytes are the file's either way, and `symhub_sendfile_bytes_total` says which way
//! they went.

use std::time::Duration;

use crate::support::*;

const KEY: &str = "/zero.pdb/0123456789ABCDEF0123456789ABCDEF1/zero.pdb";
/// Three placeholder chunks and an odd tail: a body of several sendfile ranges.
const LEN: usize = 3 * 1024 * 1024 + 12_345;
const SENT: &str = "symhub_sendfile_bytes_total";

async fn warm(len: usize) -> (FakeUpstream, Symhub, bytes::Bytes) {
    let up = FakeUpstream::start().await;
    let body = data(len, 77);
    up.serve(KEY, body.clone());
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    assert_eq!(s.get(KEY).await.bytes().await.unwrap(), body);
    s.settle().await;
    (up, s, body)
}

#[tokio::test]
async fn large_hits_go_out_with_sendfile_over_http1_and_are_copied_over_http2() {
    let (_up, s, body) = warm(LEN).await;
    let url = format!("{}{KEY}", s.url);
    let before = s.metric(SENT).await;

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_sent_with_sendfile(s.metric(SENT).await - before, LEN);
    let before = s.metric(SENT).await;

    let r = client()
        .get(&url)
        .header("range", "bytes=100000-2500000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), body.slice(100_000..2_500_001));
    assert_sent_with_sendfile(s.metric(SENT).await - before, 2_400_001);
    let before = s.metric(SENT).await;

    // HTTP/2 (cleartext, prior knowledge): hyper frames the body itself, so it is copied.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(s.metric(SENT).await - before, 0.0);
}

/// HEAD, a whole file, a range, a small file and the whole file again on one keep-alive
/// connection, the last two requests pipelined: every response's bytes are its own.
#[tokio::test]
async fn sendfile_bodies_keep_their_place_on_a_keep_alive_connection() {
    let (up, s, body) = warm(LEN).await;
    let small_key = "/small.pdb/0123456789ABCDEF0123456789ABCDEF1/small.pdb";
    let small = data(5_000, 78);
    up.serve(small_key, small.clone());
    s.get(small_key).await.bytes().await.unwrap();
    s.settle().await;
    let before = s.metric(SENT).await;

    let url = s.url.clone();
    let body2 = body.clone();
    tokio::task::spawn_blocking(move || {
        let req = |method: &str, key: &str, extra: &str| {
            format!("{method} {key} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
        };
        let mut c = RawConn::open(&url);
        let head = c.send_head(&req("HEAD", KEY, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains(&format!("content-length: {LEN}")), "{head}");
        let r = c.send(&req("GET", KEY, ""));
        assert_eq!(r.body, body2);
        let r = c.send(&req("GET", KEY, "Range: bytes=70000-1200000\r\n"));
        assert_eq!(r.status, 206);
        assert_eq!(r.body, body2.slice(70_000..1_200_001));
        let r = c.send(&req("GET", small_key, ""));
        assert_eq!(r.body, small);
        // Two requests in one write: the second response follows the first's last byte.
        let mut both = req("GET", KEY, "Range: bytes=-300000\r\n");
        both.extend(req("GET", KEY, ""));
        let r = c.send(&both);
        assert_eq!(r.body, body2.slice(LEN - 300_000..));
        let r = c.send(b"");
        assert_eq!(r.body, body2);
    })
    .await
    .unwrap();
    let sent = s.metric(SENT).await - before;
    assert_sent_with_sendfile(sent, 2 * LEN + 1_130_001 + 300_000);
}

#[tokio::test]
async fn sendfile_over_a_unix_socket() {
    let up = FakeUpstream::start().await;
    let body = data(LEN, 79);
    up.serve(KEY, body.clone());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("symhub.sock");
    let config = config_with(&[("up", &up.url, "")], "");
    let s = Symhub::start_on(&config, &format!("unix:{}", socket.display()));
    let get = move |path: &'static str| {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || {
            let out = unix_get(&socket, path, "");
            let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&out[..at]).to_ascii_lowercase();
            (head, out[at..].to_vec())
        })
    };
    // The first request fills the cache; once that has committed, a request is a hit.
    assert_eq!(get(KEY).await.unwrap().1, body);
    let mut hit = false;
    for _ in 0..100 {
        let (head, bytes) = get(KEY).await.unwrap();
        assert_eq!(bytes, body);
        if head.contains("x-cache: hit") {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "never a hit over the socket");
    let metrics = String::from_utf8(get("/metrics").await.unwrap().1).unwrap();
    let sent: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(SENT)?.trim().parse().ok())
        .unwrap();
    // A hit's pages may be reclaimed meanwhile and copied: see `assert_sent_with_sendfile`.
    assert!(sent >= LEN as f64 / 2.0, "{sent}");
    drop(s);
}

/// Pages dropped from the page cache are read (on the blocking pool) and copied, not sent
/// with `sendfile`, which would wait for the disk on the connection's thread.
#[tokio::test]
async fn pages_not_in_the_page_cache_are_copied() {
    let (_up, s, body) = warm(LEN).await;
    let objects = s.objects();
    let (path, _) = objects.iter().find(|(_, len)| *len == LEN as u64).unwrap();
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();

    let before = s.metric(SENT).await;
    assert_eq!(s.get(KEY).await.bytes().await.unwrap(), body);
    let sent = s.metric(SENT).await - before;
    // At least the first chunk (256 KiB) was not cached and came through a read.
    assert!(sent <= (LEN - 256 * 1024) as f64, "{sent}");
}

/// A download still arriving goes to every waiting HTTP/1 client from the temp file's pages
/// with `sendfile`, stretch by stretch as it lands (a range too); an HTTP/2 client of it gets
/// copies. A download that breaks off cuts every such body, and nothing is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_streams_to_its_waiting_clients_with_sendfile() {
    let up = FakeUpstream::start().await;
    let body = data(LEN, 80);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(40, Duration::from_millis(10))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let before = s.metric(SENT).await;
    let url = format!("{}{KEY}", s.url);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let get = |c: reqwest::Client, range: Option<&'static str>| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut req = c.get(&url);
            if let Some(r) = range {
                req = req.header("range", r);
            }
            let r = req.send().await.unwrap();
            (
                r.headers()["x-cache"].to_str().unwrap().to_owned(),
                r.bytes().await.unwrap(),
            )
        })
    };
    let waiting = [
        get(client(), None),
        get(client(), None),
        get(client(), Some("bytes=1000000-2999999")),
        get(h2, None),
    ];
    let mut answers = Vec::new();
    for w in waiting {
        answers.push(w.await.unwrap());
    }
    for (i, (cache, bytes)) in answers.iter().enumerate() {
        assert_ne!(cache, "HIT", "client {i} waited for the download");
        let want = if i == 2 {
            body.slice(1_000_000..3_000_000)
        } else {
            body.clone()
        };
        assert!(*bytes == want, "client {i}'s bytes");
    }
    assert_eq!(up.hits(KEY), 1, "one download");
    assert_sent_with_sendfile(s.metric(SENT).await - before, 2 * LEN + 2_000_000);

    // Cut after 2 MiB: every HTTP/1 body that followed it is cut, none looks whole.
    let cut_key = "/cut.pdb/0123456789ABCDEF0123456789ABCDEF1/cut.pdb";
    up.route(
        cut_key,
        Behavior::Serve(
            Serve::bytes(body.clone())
                .drip(20, Duration::from_millis(10))
                .cut_after(2 << 20),
        ),
    );
    let url = format!("{}{cut_key}", s.url);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { client().get(&url).send().await.unwrap().bytes().await })
        })
        .collect();
    for r in readers {
        assert!(r.await.unwrap().is_err(), "a cut download served as whole");
    }
    s.settle().await;
    assert_eq!(
        s.get(cut_key).await.headers()["x-cache"],
        "MISS",
        "not cached"
    );
}

/// A download without a length (the upstream's body is chunked) that breaks off: an HTTP/1.0
/// client, whose body only the close delimits, sees the connection reset, never a clean close
/// that would pass a short body for a whole one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_body_without_a_length_ends_in_a_reset() {
    use std::io::{Read, Write};
    let up = FakeUpstream::start().await;
    let body = data(LEN, 81);
    up.route(
        KEY,
        Behavior::Serve(
            Serve::bytes(body)
                .chunked()
                .drip(8, Duration::from_millis(20))
                .cut_after(LEN / 2),
        ),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let addr = s.url.trim_start_matches("http://").to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(format!("GET {KEY} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let ended = c.read_to_end(&mut got);
        (ended, got)
    })
    .await
    .unwrap();
    let (ended, got) = read;
    let head = String::from_utf8_lossy(&got[..got.len().min(200)]).to_lowercase();
    assert!(head.starts_with("http/1.0 200") || got.is_empty(), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let err = ended.expect_err("a clean close after a broken body");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}
