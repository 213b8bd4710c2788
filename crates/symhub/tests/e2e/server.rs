//! The server around the cache: UNIX sockets, path prefix, workers, config errors, shutdown
//! (its log lines are `logs.rs`'s).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "/sock.pdb/00000000000000000000000000000000A/sock.pdb";

#[tokio::test]
async fn serves_over_a_unix_socket_replacing_a_stale_one() {
    let up = FakeUpstream::start().await;
    up.serve(KEY, "over the socket");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("symhub.sock");
    // A stale socket file, as a crashed process leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let config = config_with(
        &[("up", &up.url, "")],
        "[server]\nunix_socket_mode = \"0600\"",
    );
    let s = Symhub::start_on(&config, &format!("unix:{}", socket.display()));
    assert_eq!(s.url, format!("unix:{}", socket.display()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let answer = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || {
            let out = unix_get(&socket, KEY, "X-Forwarded-For: 198.51.100.23\r\n");
            String::from_utf8_lossy(&out).into_owned()
        }
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("over the socket"), "{answer}");
    // nginx in front over the socket is trusted for X-Forwarded-For by default.
    assert!(
        s.stderr().contains("client=198.51.100.23"),
        "{}",
        s.stderr()
    );
}

#[tokio::test]
async fn a_socket_path_that_is_a_regular_file_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious");
    std::fs::write(&path, b"data").unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen"])
        .arg(format!("unix:{}", path.display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a socket"));
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

#[tokio::test]
async fn path_prefix_moves_the_symbol_routes() {
    let up = FakeUpstream::start().await;
    up.serve(KEY, "prefixed");
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\npath_prefix = \"/symbols\"",
    ));
    let r = s.get(&format!("/symbols{KEY}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "prefixed");
    assert_eq!(s.get(KEY).await.status(), 404);
    // The prefix is whole segments: `/symbolsbar.pdb/…` is not under `/symbols`.
    for outside in [format!("/symbols{}", &KEY[1..]), format!("/symbolsx{KEY}")] {
        let r = s.get(&outside).await;
        assert_eq!(r.status(), 404, "{outside}");
        assert_eq!(r.headers()["x-cache"], "INVALID", "{outside}");
    }
    assert_eq!(up.total_hits(), 1);
}

/// Connections are served on `server.workers` threads of their own, spread over them
/// (`symhub_connections{worker}`), each connection's request and the fill it starts on one
/// of them (`http::workers`).
#[tokio::test]
async fn connections_are_served_on_the_configured_workers() {
    let up = FakeUpstream::start().await;
    up.serve(KEY, "on a worker");
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\nworkers = 3",
    ));
    // Eight kept-alive connections, one after the other, and the ninth asks: however they
    // were accepted, no worker serves more than one more than another.
    let mut kept = Vec::new();
    for _ in 0..8 {
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(format!("{}/healthz", s.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        kept.push(client);
    }
    let asks = reqwest::Client::new().get(format!("{}/metrics", s.url));
    let metrics = asks.send().await.unwrap().text().await.unwrap();
    let open: Vec<u64> = (0..3)
        .map(|w| {
            let line = format!("symhub_connections{{worker=\"{w}\"}} ");
            let n = metrics.lines().find_map(|l| l.strip_prefix(line.as_str()));
            n.unwrap_or_else(|| panic!("no {line}in {metrics}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert!(open.iter().sum::<u64>() >= 9, "{open:?}");
    let (most, least) = (open.iter().max().unwrap(), open.iter().min().unwrap());
    assert!(most - least <= 1, "{open:?}");
    drop(kept);
    // A connection each: one fills, the others join it or hit what it cached.
    let gets = (0..6).map(|_| {
        let url = format!("{}{KEY}", s.url);
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let r = client.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    });
    for (status, body) in futures_util::future::join_all(gets).await {
        assert_eq!(status, 200);
        assert_eq!(body, "on a worker");
    }
    assert_eq!(up.total_hits(), 1);
    let mut workers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| name.starts_with("symhub-wrk-"))
        .collect();
    workers.sort();
    assert_eq!(workers, ["symhub-wrk-0", "symhub-wrk-1", "symhub-wrk-2"]);
}

#[tokio::test]
async fn query_strings_are_ignored_and_segments_decoded() {
    let up = FakeUpstream::start().await;
    let key = "/libstdc++.so.6/178755DD8CAF0765454517F01B557DA20/libstdc++.so.6.sym";
    let encoded = "/libstdc%2B%2B.so.6/178755DD8CAF0765454517F01B557DA20/libstdc%2B%2B.so.6.sym";
    // Upstreams are sent `+` as `%2B` (S3 reads a bare `+` in a path as a space).
    up.serve(
        encoded,
        "MODULE Linux x86_64 178755DD8CAF0765454517F01B557DA20 libstdc++.so.6",
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let r = s
        .get(&format!(
            "{key}?code_file=libstdc%2B%2B.so.6&code_id=dd558717af8c6507"
        ))
        .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    assert_eq!(s.get(encoded).await.headers()["x-cache"], "HIT");
    assert_eq!(up.total_hits(), 1);
}

#[test]
fn bad_config_is_refused_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("symhub.toml");
    std::fs::write(&cfg, "[cache]\nmax_sise = \"1 GiB\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("symhub.toml") && err.contains("max_sise"),
        "{err}"
    );

    let out = std::process::Command::new(bin())
        .args(["serve", "--upstream", "ftp://nope", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be http or https"));

    // A token in the query would sit before every key appended to the path: refused, and
    // the error does not repeat the token.
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream"])
        .arg("https://sym.example/s?token=T0KEN")
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("symhub started with a query in an upstream URL");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("query") && err.contains("headers"), "{err}");
    assert!(!err.contains("T0KEN"), "{err}");
}

/// A route setting on one of symhub's own routes used to pass validation: axum then panicked
/// after "listening on" (two handlers for one method and path), or the setting's route
/// silently took the other's place.
#[tokio::test]
async fn route_settings_on_symhubs_own_routes_are_refused_before_anything_starts() {
    let v1 = |path: &str| {
        (
            format!("[upload]\nv1_path = \"{path}\"\n"),
            "upload.v1_path",
        )
    };
    let prefix = |p: &str| {
        (
            format!("[server]\npath_prefix = \"{p}\"\n"),
            "server.path_prefix",
        )
    };
    let cases = [
        v1("/api/keys"),
        v1("/api/transactions"),
        v1("/api/files/missing"),
        v1("/v1/uploads:create"),
        v1("/api/keys/contractor"),
        v1("/healthz"),
        v1("/ui/x"),
        v1("/sym{upload}"),
        v1("/a//b"),
        prefix("/metrics"),
        prefix("/healthz"),
        prefix("/healthz/x"),
        prefix("/symbols//x"),
        prefix("/symbols/./x"),
    ];
    for (config, setting) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("symhub.toml");
        std::fs::write(&cfg, &config).unwrap();
        let mut child = std::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{config}: accepted, symhub is serving");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{config}");
        assert!(
            err.contains(setting) && !err.contains("panicked"),
            "{config}: {err}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "{config}: data dir created"
        );
    }
    // Paths of their own, beside symhub's routes, are taken.
    let s = Symhub::start("[server]\npath_prefix = \"/symbols\"\n[upload]\nv1_path = \"/v1/up\"\n");
    let r = client()
        .post(format!("{}/symbols/v1/up", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the v1 route, refusing: no key is configured"
    );
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn flags_override_the_config_file() {
    let configured = FakeUpstream::start().await;
    let flagged = FakeUpstream::start().await;
    flagged.serve(KEY, "from the flag");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("symhub.toml");
    std::fs::write(
        &cfg,
        config_with(
            &[("configured", &configured.url, "")],
            "[server]\nlisten = [\"127.0.0.1:1\"]",
        ),
    )
    .unwrap();
    let (mut child, url) = spawn_serve(
        std::process::Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &flagged.url,
                "--config",
            ])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    let r = client().get(format!("{url}{KEY}")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "from the flag");
    assert_eq!(configured.total_hits(), 0);
    assert!(dir.path().join("data/cache/index.sqlite3").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_response_finish() {
    let up = FakeUpstream::start().await;
    // Big enough that its commit (hash, fsync, rename) outlasts the response's end.
    let body = data(16 << 20, 1);
    up.route(
        KEY,
        Behavior::Serve(Serve::bytes(body.clone()).drip(8, Duration::from_millis(100))),
    );
    let mut s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\nshutdown_grace = \"5s\"",
    ));
    let url = format!("{}{KEY}", s.url);
    let download =
        tokio::spawn(async move { client().get(&url).send().await.unwrap().bytes().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // SIGHUP (a closed terminal, a reflex "reload") neither stops nor cuts anything.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.get_now("/healthz").await.status(), 200, "still serving");
    assert!(s.stderr().contains("SIGHUP ignored"), "{}", s.stderr());
    // Two SIGTERMs at once (GNU timeout signals the child, then its group) are one.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    let status =
        tokio::task::block_in_place(|| s.terminate(Duration::from_secs(8))).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(
        download.await.unwrap().unwrap() == body,
        "the in-flight response completed"
    );
    // And the download was committed before the process left (break-it pass: a file that
    // finished during the drain was fetched again after every restart).
    s.restart();
    let r = s.get(KEY).await;
    assert_eq!(r.headers()["x-cache"], "HIT", "{}", s.stderr());
    assert!(r.bytes().await.unwrap() == body);
    assert_eq!(up.hits(KEY), 1);
}

/// What still runs when the grace period ends is cut then, not later: here a `.pdb`
/// unpacked on the blocking pool from a `.pd_` that arrives slowly, whose unpacking waits on
/// its download (a worker used to wait 1 s more for such blocking work, break-it pass).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_cuts_what_still_runs_when_the_grace_period_ends() {
    let up = FakeUpstream::start().await;
    let pd_ = "/slow.pdb/0123456789ABCDEF0123456789ABCDEF1/slow.pd_";
    let cab = make_cab("slow.pdb", &data(1536 * 1024, 5));
    up.route(
        pd_,
        Behavior::Serve(Serve::bytes(cab).drip(100, Duration::from_millis(100))),
    );
    let mut s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\nshutdown_grace = \"1s\"",
    ));
    let url = format!("{}{}", s.url, pd_.replace(".pd_", ".pdb"));
    let download = tokio::spawn(async move {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.map(|b| b.len())
    });
    // Idle kept-alive connections are closed when the shutdown begins, not counted as cut.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let c = reqwest::Client::new();
        let r = c.get(format!("{}/healthz", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let status =
        tokio::task::block_in_place(|| s.terminate(Duration::from_secs(8))).expect("exited");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_millis(1800),
        "exited {took:?} after SIGTERM, with a 1 s grace period"
    );
    assert!(download.await.unwrap().is_err(), "the response was cut");
    // Said once, with what was cut, however many workers accept.
    let log = s.stderr();
    let said: Vec<_> = log.lines().filter(|l| l.contains("grace period")).collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("closing 1 connections"), "{}", said[0]);
}
