//! Hostile clients: huge or many headers, slow headers (slowloris), slow bodies, floods of
//! connections. The server answers them with a clear refusal or a closed connection, and
//! keeps answering everybody else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "hardkey";

fn config(extra: &str) -> String {
    format!(
        "upstream = []\n{}[server]\nheader_read_timeout = \"1s\"\nbody_idle_timeout = \"1s\"\n{extra}",
        auth_config(KEY)
    )
}

fn connect(s: &Symhub) -> TcpStream {
    let c = TcpStream::connect(s.url.strip_prefix("http://").unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn status_of(mut c: TcpStream, request: &[u8]) -> String {
    let _ = c.write_all(request);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_numerous_headers_are_refused() {
    let s = Symhub::start(&config("max_headers = 50\nmax_header_bytes = \"16 KiB\"\n"));
    let c = connect(&s);
    let big = format!(
        "GET /a/b/c HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let line = tokio::task::spawn_blocking(move || status_of(c, big.as_bytes()))
        .await
        .unwrap();
    assert!(line.contains("431") || line.is_empty(), "{line}");
    let c = connect(&s);
    let mut many = String::from("GET /a/b/c HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let line = tokio::task::spawn_blocking(move || status_of(c, many.as_bytes()))
        .await
        .unwrap();
    assert!(line.contains("431") || line.is_empty(), "{line}");
    assert_eq!(s.get("/healthz").await.status(), 200);
}

/// The default limit (100, hyper's own, so symhub does not set it) holds as well: 99
/// headers pass, 150 get 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_header_count_limit_holds() {
    let s = Symhub::start(&config(""));
    for (count, refused) in [(97, false), (150, true)] {
        let c = connect(&s);
        let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..count {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        let line = tokio::task::spawn_blocking(move || status_of(c, head.as_bytes()))
            .await
            .unwrap();
        if refused {
            assert!(line.contains("431") || line.is_empty(), "{count}: {line}");
        } else {
            assert!(line.contains("200"), "{count}: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_and_others_are_served_meanwhile() {
    let s = Symhub::start(&config(""));
    // Ten slowloris connections: a partial request line, then nothing.
    let mut slow: Vec<TcpStream> = (0..10).map(|_| connect(&s)).collect();
    for c in &mut slow {
        c.write_all(b"GET /a/b/c HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
    }
    let started = Instant::now();
    assert_eq!(
        s.get("/healthz").await.status(),
        200,
        "others are served meanwhile"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // After the header timeout the slow connections are closed by the server.
    let closed = tokio::task::spawn_blocking(move || {
        slow.into_iter().all(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            let mut buf = Vec::new();
            // EOF, an answer (408) or a reset all mean the server hung up; only our own
            // read timeout means it kept the connection.
            match c.read_to_end(&mut buf) {
                Ok(_) => true,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
    })
    .await
    .unwrap();
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after about header_read_timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_clients_until_slots_free() {
    let s = Symhub::start(&config("max_connections = 4\n"));
    // Four idle connections take every slot…
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(&s)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    // …so this request waits until the header timeout frees them, then is served.
    let r = client()
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "the cap held ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(5),
        "and was released ({waited:?})"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_body_is_cut_and_leaves_nothing() {
    let s = Symhub::start(&config(""));
    let url = s.create_upload(KEY).await;
    let path = url.splitn(4, '/').nth(3).unwrap().to_owned();
    let mut c = connect(&s);
    let started = Instant::now();
    let line = tokio::task::spawn_blocking(move || {
        write!(
            c,
            "PUT /{path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nMODUL\r\n"
        )
        .unwrap();
        // …and then nothing more.
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .unwrap();
    assert!(line.contains(" 400 "), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(walk(&s.data_dir.join("store/tmp")).is_empty());
    assert!(walk(&s.data_dir.join("store/uploads")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_does_not_stop_the_server() {
    let s = Symhub::start(&config(""));
    let flood: Vec<TcpStream> = (0..300).map(|_| connect(&s)).collect();
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(s.get("/healthz").await.status(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_but_slow_downloads_do_not() {
    let up = FakeUpstream::start().await;
    let body = data(300_000, 21);
    let key = "/slow.pdb/1/slow.pdb";
    up.route(
        key,
        Behavior::Serve(Serve::bytes(body.clone()).drip(6, Duration::from_millis(500))),
    );
    let s = Symhub::start(&format!(
        "[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"1s\"\n{}",
        config_with(&[("up", &up.url, "")], "")
    ));
    // A 2.5 s download during which the client sends nothing is not idle.
    let got = client()
        .get(format!("{}{key}", s.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, body);
    // A keep-alive connection with nothing running is closed after idle_timeout.
    let mut c = connect(&s);
    let closed_after = tokio::task::spawn_blocking(move || {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let mut all = Vec::new();
        let _ = c.read_to_end(&mut all);
        assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after >= Duration::from_millis(800),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(4), "{closed_after:?}");
}

/// A head that pauses longer than `idle_timeout` (but within `header_read_timeout`) on a
/// kept-alive connection is still served: a head arriving is timed from its first byte only
/// (break-it pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_may_pause_longer_than_idle_timeout() {
    let s = Symhub::start(
        "upstream = []\n[server]\nheader_read_timeout = \"4s\"\nidle_timeout = \"1s\"\n",
    );
    let mut c = connect(&s);
    let answer = tokio::task::spawn_blocking(move || {
        let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buf = [0u8; 4096];
        c.write_all(get).unwrap();
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        c.write_all(&get[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(1800));
        c.write_all(&get[10..]).unwrap();
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// Between requests a keep-alive connection gets `idle_timeout`, however short
/// `header_read_timeout` is: that one bounds a request head while it arrives (hyper's own
/// header timer also ran between requests, closing such connections early; break-it pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_waits_idle_timeout_and_a_slow_head_header_read_timeout() {
    let s = Symhub::start(
        "upstream = []\n[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"4s\"\n",
    );
    let mut kept = connect(&s);
    let mut slow = connect(&s);
    let ended = tokio::task::spawn_blocking(move || {
        let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        kept.write_all(get).unwrap();
        let mut buf = [0u8; 4096];
        let n = kept.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // A head trickled a byte at a time keeps bytes moving, but never completes.
        let started = Instant::now();
        slow.set_nonblocking(true).unwrap();
        let mut slow_closed = None;
        for &b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(40)
        {
            std::thread::sleep(Duration::from_millis(100));
            // EOF, an answer or a reset: the server hung up.
            let cut = slow.write_all(&[b]).is_err()
                || match slow.read(&mut buf) {
                    Ok(_) => true,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
            if cut {
                slow_closed = Some(started.elapsed());
                break;
            }
        }
        // The kept-alive one, idle for 2.5 s by now, still answers.
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
        kept.write_all(get).unwrap();
        let n = kept.read(&mut buf).unwrap_or(0);
        (slow_closed, String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap();
    let (slow_closed, second) = ended;
    let slow_closed = slow_closed.expect("a head trickled for 4 s was never cut");
    assert!(
        slow_closed >= Duration::from_millis(800) && slow_closed < Duration::from_secs(3),
        "{slow_closed:?}"
    );
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
}

/// With two listeners, slots go to what is accepted, not to idle accept loops: one
/// listener's connections are served while the other has none (they waited for ever when
/// every accepting worker's loop of the idle listener held a slot).
#[test]
fn the_connection_cap_is_not_held_by_an_idle_listener() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("symhub.toml");
    std::fs::write(
        &config,
        "upstream = []\n[server]\nmax_connections = 2\nworkers = 2\n",
    )
    .unwrap();
    let socket = format!("unix:{}", dir.path().join("s.sock").display());
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--listen", &socket])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let addr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("symhub: listening on http://")
                .map(str::to_owned)
        })
        .expect("a TCP listener");
    for i in 0..6 {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write!(
            c,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "request {i}: {out:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Past the connection cap, connections wait in the listen backlog, and it holds hundreds
/// (tokio's own backlog of 128 refused the rest's handshakes until a SYN retransmit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_connections_wait_in_the_backlog() {
    let s = Symhub::start(&config("max_connections = 1\n"));
    let addr = s.url.strip_prefix("http://").unwrap().to_owned();
    // The one slot taken: nothing more is accepted.
    let _held = connect(&s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cap: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(4096);
    let want = 400.min(cap);
    let connects = (0..want).map(|_| {
        let addr = addr.clone();
        tokio::time::timeout(
            Duration::from_millis(800),
            tokio::net::TcpStream::connect(addr),
        )
    });
    let waiting = futures_util::future::join_all(connects).await;
    let done = waiting.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
    assert!(
        done >= want - 2,
        "{done} of {want} connections completed their handshake"
    );
}
