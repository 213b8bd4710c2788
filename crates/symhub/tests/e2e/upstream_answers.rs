//! Upstreams as public symbol servers really answer: bodies with a `Content-Encoding`, answers
//! that depend on a forwarded header or on the exact spelling of the key, empty bodies,
//! compressed-name probes, and a `.pd_` that arrives slowly.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::support::*;

const SYM: &str = "/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym";

/// `plain` encoded as an upstream would send it with `Content-Encoding: enc`.
async fn encode(enc: &str, plain: &[u8]) -> Vec<u8> {
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    use tokio::io::{AsyncWrite, AsyncWriteExt};
    async fn run<W: AsyncWrite + Unpin>(mut w: W, plain: &[u8]) -> W {
        w.write_all(plain).await.unwrap();
        w.shutdown().await.unwrap();
        w
    }
    match enc {
        "gzip" => run(GzipEncoder::new(Vec::new()), plain).await.into_inner(),
        // HTTP's `deflate` is the zlib format.
        "deflate" => run(ZlibEncoder::new(Vec::new()), plain).await.into_inner(),
        "br" => run(BrotliEncoder::new(Vec::new()), plain)
            .await
            .into_inner(),
        "zstd" => run(ZstdEncoder::new(Vec::new()), plain).await.into_inner(),
        other => panic!("no encoder for {other}"),
    }
}

/// Text shaped like a Breakpad file, long enough to compress well.
fn sym_text(seed: u64) -> Vec<u8> {
    let mut s = String::from("MODULE windows x86_64 44E4EC8C2F41492B9369D6B9A059577C2 xul.pdb\n");
    for i in 0..5000u64 {
        s.push_str(&format!(
            "FUNC {:x} 20 0 ns::function_{}_{seed}(int, char const*)\n",
            i * 32,
            i
        ));
    }
    s.into_bytes()
}

fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", &hex::encode(sha2::Sha256::digest(bytes))[..32])
}

#[tokio::test]
async fn encoded_bodies_are_decoded_and_the_file_itself_is_cached() {
    let up = FakeUpstream::start().await;
    let cases = [
        ("gzip", false),
        ("deflate", false),
        ("br", false),
        ("zstd", false),
        ("gzip", true),
    ];
    let mut keys = Vec::new();
    for (i, (enc, chunked)) in cases.iter().enumerate() {
        let plain = sym_text(i as u64);
        let encoded = encode(enc, &plain).await;
        assert!(encoded.len() * 3 < plain.len(), "{enc} really compresses");
        let key = format!("/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C{i}/xul.sym");
        let mut serve = Serve::bytes(encoded)
            .content_encoding(enc)
            .content_type("text/plain");
        if *chunked {
            serve = serve.chunked().drip(8, Duration::from_millis(20));
        }
        up.route(&key, Behavior::Serve(serve));
        keys.push((key, plain));
    }
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for (key, plain) in &keys {
        let r = s.get(key).await;
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.headers()["x-cache"], "MISS");
        assert!(r.headers().get("content-encoding").is_none());
        assert_eq!(
            &r.bytes().await.unwrap()[..],
            &plain[..],
            "{key} on the miss"
        );
        let r = s.get(key).await;
        assert_eq!(r.headers()["x-cache"], "HIT");
        assert!(r.headers().get("content-encoding").is_none());
        assert_eq!(
            r.headers()["content-length"],
            plain.len().to_string().as_str()
        );
        assert_eq!(
            r.headers()["etag"],
            etag_of(plain).as_str(),
            "hash of the file"
        );
        assert_eq!(&r.bytes().await.unwrap()[..], &plain[..], "{key} on a hit");
        assert_eq!(up.hits(key), 1);
    }
    let cached: u64 = s.objects().iter().map(|(_, len)| len).sum();
    let plain: u64 = keys.iter().map(|(_, p)| p.len() as u64).sum();
    assert_eq!(cached, plain, "what is cached is the decoded files");
}

#[tokio::test]
async fn undecodable_or_broken_encodings_are_upstream_failures() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let plain = sym_text(9);
    // `compress` is a real encoding that symhub does not decode: the next upstream is asked.
    a.route(
        SYM,
        Behavior::Serve(Serve::bytes(plain.clone()).content_encoding("compress")),
    );
    b.serve(SYM, plain.clone());
    // Announced as gzip, but not gzip: nothing cached, the next request asks again.
    let bad = "/bad.pdb/44E4EC8C2F41492B9369D6B9A059577C2/bad.sym";
    a.route(
        bad,
        Behavior::Serve(Serve::bytes(plain.clone()).content_encoding("gzip")),
    );
    let s = Symhub::start(&config_with(&[("a", &a.url, ""), ("b", &b.url, "")], ""));
    let r = s.get(SYM).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-symhub-upstream"], "b");
    assert_eq!(&r.bytes().await.unwrap()[..], &plain[..]);
    let r = s.get(SYM).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(&r.bytes().await.unwrap()[..], &plain[..]);

    // Decoding fails on the first bytes, before any header went out: a plain 404.
    assert_eq!(s.get(bad).await.status(), 404);
    let r = s.get(bad).await;
    assert_eq!(
        r.headers()["x-cache"],
        "MISS",
        "not remembered: {}",
        s.stderr()
    );
    assert_eq!(a.hits(bad), 2);
    assert!(s.objects().len() == 1, "only the good file is cached");
}

/// The real consumer against a bucket that stores `.sym` files gzip-encoded: through symhub
/// it symbolicates exactly as it does talking to the bucket directly.
#[tokio::test]
async fn minidump_stackwalk_through_symhub_matches_a_gzip_bucket_directly() {
    let Some(tool) = minidump_stackwalk() else {
        return;
    };
    let up = FakeUpstream::start().await;
    let root = fixtures().join("breakpad/symbols");
    for file in walk(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let gz = encode("gzip", &std::fs::read(&file).unwrap()).await;
        up.route(
            &format!("/{rel}"),
            Behavior::Serve(Serve::bytes(gz).content_encoding("gzip")),
        );
    }
    let s = Symhub::start(&config_with(&[("bucket", &up.url, "")], ""));
    let direct = stackwalk(&tool, &format!("{}/", up.url)).await;
    let through = stackwalk(&tool, &format!("{}/", s.url)).await;
    assert!(
        direct.contains("test_app.exe!main [test_app.cc : 65 + 0x4]"),
        "the bucket itself works for the client:\n{direct}"
    );
    assert_eq!(through, direct, "same frames through symhub");
    let r = s
        .get("/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym")
        .await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert!(r.bytes().await.unwrap().starts_with(b"MODULE windows x86 "));
}

const NUGET_KEY: &str = "/system.threading.thread.pdb/a43b38726e6a4b3cb1691f35f0d6cc48FFFFFFFF/system.threading.thread.pdb";

/// symbols.nuget.org answers 403 unless `SymbolChecksum` is forwarded; WinDbg never sends
/// it, Visual Studio and dotnet-symbol do. A WinDbg miss must not answer for them.
#[tokio::test]
async fn a_miss_without_a_forwarded_header_does_not_answer_requests_with_it() {
    let up = FakeUpstream::start().await;
    let pdb = data(3000, 1);
    up.route(
        NUGET_KEY,
        Behavior::RequireHeader(
            "symbolchecksum",
            Box::new(Behavior::Serve(Serve::bytes(pdb.clone()))),
        ),
    );
    let s = Symhub::start(&config_with(
        &[("nuget", &up.url, "forward_headers = [\"SymbolChecksum\"]")],
        "",
    ));
    let s = &s;
    let with_checksum = |value: &'static str| {
        let url = format!("{}{NUGET_KEY}", s.url);
        async move {
            s.settle().await;
            client()
                .get(url)
                .header("SymbolChecksum", value)
                .send()
                .await
                .unwrap()
        }
    };
    let r = s.get(NUGET_KEY).await;
    assert_eq!(r.status(), 404);
    let r = s.get(NUGET_KEY).await;
    assert_eq!(r.headers()["x-cache"], "NEGATIVE", "remembered for WinDbg");
    assert_eq!(up.hits(NUGET_KEY), 1);

    let r = with_checksum("SHA256:0011").await;
    assert_eq!(
        r.status(),
        200,
        "asked again: this request is sent differently"
    );
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap(), pdb);
    assert_eq!(up.hits(NUGET_KEY), 2);
    let r = up.requests();
    assert_eq!(r.last().unwrap().1["symbolchecksum"], "SHA256:0011");
    // The file is the file: now every client gets it.
    let r = s.get(NUGET_KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(up.hits(NUGET_KEY), 2);
}

/// With `as-requested` spelling (the default) a case-sensitive store answers one client's
/// spelling and not another's: a miss of one spelling is not a miss of the other.
#[tokio::test]
async fn a_miss_of_one_spelling_does_not_answer_another_spelling() {
    let up = FakeUpstream::start().await;
    let exact = "/Foo.pdb/0123456789ABCDEF0123456789ABCDEFa/Foo.pdb";
    let body = data(2000, 2);
    up.serve(exact, body.clone());
    let s = Symhub::start(&config_with(&[("s3", &up.url, "")], ""));
    let lower = exact.to_lowercase();
    assert_eq!(s.get(&lower).await.status(), 404);
    assert_eq!(s.get(&lower).await.headers()["x-cache"], "NEGATIVE");
    let r = s.get(exact).await;
    assert_eq!(r.status(), 200, "the exact spelling is asked for");
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = s.get(&lower).await;
    assert_eq!(r.headers()["x-cache"], "HIT", "one file for every spelling");
    assert_eq!((up.hits(&lower), up.hits(exact)), (1, 1));
}

/// An empty PDB, DLL or `.sym` in a cache is a known poison: never cached, never served.
#[tokio::test]
async fn empty_bodies_are_never_symbol_files() {
    let up = FakeUpstream::start().await;
    let body = data(5000, 3);
    let empty_then_real = |empty: Serve| {
        Behavior::Sequence(vec![
            Behavior::Serve(empty),
            Behavior::Serve(Serve::bytes(body.clone())),
        ])
    };
    let sized = "/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.pdb";
    let chunked = "/b.dll/5F1B2C3D4000/b.dll";
    up.route(sized, empty_then_real(Serve::bytes(bytes::Bytes::new())));
    up.route(
        chunked,
        empty_then_real(Serve::bytes(bytes::Bytes::new()).chunked()),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for key in [sized, chunked] {
        let r = s.get(key).await;
        assert_eq!(r.status(), 404, "{key}: an empty answer is not a file");
        let r = s.get(key).await;
        assert_eq!(r.status(), 200, "{key}: asked again, not remembered");
        assert_eq!(r.bytes().await.unwrap(), body);
        assert_eq!(s.get(key).await.headers()["x-cache"], "HIT");
    }
    assert!(s.objects().iter().all(|(_, len)| *len > 0));

    // With a second upstream, the empty answer is passed over for its file.
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    a.serve(sized, bytes::Bytes::new());
    b.serve(sized, body.clone());
    let s = Symhub::start(&config_with(&[("a", &a.url, ""), ("b", &b.url, "")], ""));
    let r = s.get(sized).await;
    assert_eq!(r.headers()["x-symhub-upstream"], "b");
    assert_eq!(r.bytes().await.unwrap(), body);
}

/// SymStore compresses Windows images, PDBs and DBGs only: a Breakpad, ELF or Mach-O miss
/// makes one request per upstream, not two. (Without `.sym` files made on demand, which
/// would ask for the debug file next.)
#[tokio::test]
async fn compressed_names_are_asked_only_for_windows_kinds() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let s = Symhub::start(&config_with(
        &[("a", &a.url, ""), ("b", &b.url, "")],
        "[symbolication]\non_demand = false",
    ));
    let cases = [
        (SYM, 1),
        (
            "/libxul.so/0AF3A1B2C3D4E5F60718293A4B5C6D7E0/libxul.so.sym",
            1,
        ),
        ("/libfoo.so/elf-buildid-0af3a1b2c3d4e5f6/libfoo.so", 1),
        ("/_.debug/elf-buildid-sym-0af3a1b2c3d4e5f6/_.debug", 1),
        (
            "/foo.dylib/mach-uuid-0af3a1b2c3d4e5f60718293a4b5c6d7e/foo.dylib",
            1,
        ),
        ("/foo.pdb/0123456789ABCDEF0123456789ABCDEF1/foo.pdb", 2),
        ("/foo.dll/5F1B2C3D4000/foo.dll", 2),
        ("/foo.sys/5F1B2C3D4000/foo.sys", 2),
    ];
    for (key, per_upstream) in cases {
        let before = (a.total_hits(), b.total_hits());
        assert_eq!(s.get(key).await.status(), 404);
        assert_eq!(
            (a.total_hits() - before.0, b.total_hits() - before.1),
            (per_upstream, per_upstream),
            "{key}"
        );
    }
    assert_eq!(
        a.hits("/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sy_"),
        0
    );
}

/// When only `foo.pd_` exists upstream, `foo.pdb` starts as soon as the CAB header is in and
/// flows while the CAB arrives (PerfView gives a symbol server 10 s for its first byte).
#[tokio::test]
async fn a_pdb_streams_out_of_a_pd_underscore_while_it_arrives() {
    let up = FakeUpstream::start().await;
    let content = data(1536 * 1024, 4);
    let cab = make_cab("foo.pdb", &content);
    let pdb = "/foo.pdb/0123456789ABCDEF0123456789ABCDEF1/foo.pdb";
    let pd_ = "/foo.pdb/0123456789ABCDEF0123456789ABCDEF1/foo.pd_";
    up.route(
        pd_,
        Behavior::Serve(Serve::bytes(cab).drip(30, Duration::from_millis(100))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let fetch = || {
        let url = format!("{}{pdb}", s.url);
        async move {
            let started = Instant::now();
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let len = r.headers()["content-length"].to_str().unwrap().to_owned();
            let mut body = r.bytes_stream();
            let mut bytes = Vec::new();
            let mut first = None;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap();
                if first.is_none() && !chunk.is_empty() {
                    first = Some(Instant::now());
                }
                bytes.extend_from_slice(&chunk);
            }
            (started, first.unwrap(), len, bytes)
        }
    };
    let (one, two) = tokio::join!(fetch(), fetch());
    let finished = up.finished(pd_).expect("the CAB was sent in full");
    for (started, first, len, bytes) in [one, two] {
        assert_eq!(
            len,
            content.len().to_string(),
            "Content-Length from the CAB header"
        );
        assert!(bytes == content[..], "identical bytes");
        assert!(
            first + Duration::from_millis(1500) < finished,
            "first byte {:?} after the request, the CAB ended {:?} after it",
            first - started,
            finished - started
        );
    }
    assert_eq!(up.hits(pd_), 1, "one download for both clients");
    assert_eq!(s.get(pdb).await.headers()["x-cache"], "HIT");
    assert_eq!(s.get(pd_).await.headers()["x-cache"], "HIT");
}

/// An upstream that closes a kept-alive connection as the next request arrives on it (an
/// idle timeout racing the request) is asked again on a new connection: the client gets
/// the file, not a 404 (break-it pass).
#[tokio::test]
async fn a_closed_keep_alive_connection_is_retried_on_a_new_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let url = raw_upstream(move |mut conn| {
        let counted = counted.clone();
        async move {
            let mut buf = vec![0u8; 8192];
            // The first request on a connection is answered, kept alive.
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                head.extend_from_slice(&buf[..n]);
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = b"symbols";
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            conn.write_all(answer.as_bytes()).await.unwrap();
            conn.write_all(body).await.unwrap();
            // The next one closes it, unanswered.
            let _ = conn.read(&mut buf).await;
        }
    })
    .await;
    let s = Symhub::start(&config_with(&[("up", &url, "")], ""));
    for i in 0..3 {
        let key = format!("/k{i}.pdb/0123456789ABCDEF0123456789ABCDEF1/k{i}.pdb");
        let r = s.get(&key).await;
        assert_eq!(r.status(), 200, "{key}: {}", s.stderr());
        assert_eq!(&r.bytes().await.unwrap()[..], b"symbols");
    }
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// An upstream that answers something other than HTTP answered all the same: asked once per
/// name, not again (a re-test pass: every failure was asked twice).
#[tokio::test]
async fn an_upstream_answering_garbage_is_not_asked_twice() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let url = raw_upstream(move |mut conn| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut buf = vec![0u8; 8192];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
        }
    })
    .await;
    let s = Symhub::start(&config_with(&[("up", &url, "")], ""));
    let key = "/g.pdb/0123456789ABCDEF0123456789ABCDEF1/g.pdb";
    assert_eq!(s.get(key).await.status(), 404);
    // The name and its CAB form (`g.pd_`), once each.
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// An upstream speaking raw TCP on loopback, each connection served by `serve` in a task of
/// its own: for answers no HTTP server library would give. Its base URL.
async fn raw_upstream<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(conn));
        }
    });
    url
}
