//! The request log: one JSON line per request saying what happened, also for requests cut
//! before their response, and a log reader that goes away.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "/sock.pdb/00000000000000000000000000000000A/sock.pdb";

/// The JSON log lines of download requests (`"symbol"`) so far, once the last is written.
async fn symbol_lines(s: &Symhub) -> Vec<serde_json::Value> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.stderr()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "symbol")
        .collect()
}

#[tokio::test]
async fn logs_one_json_line_per_request_with_its_outcome() {
    let up = FakeUpstream::start().await;
    up.serve(KEY, data(777, 3));
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\nlog_format = \"json\"",
    ));
    s.get(KEY).await.bytes().await.unwrap();
    s.get(KEY).await.bytes().await.unwrap();
    s.get("/nope.pdb/1/nope.pdb").await;
    s.get("/nope.pdb/1/nope.pdb").await;
    let lines = symbol_lines(&s).await;
    let outcomes: Vec<_> = lines
        .iter()
        .map(|v| v["fields"]["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["miss", "hit", "miss", "negative"]);
    assert_eq!(lines[0]["fields"]["bytes"], 777);
    assert_eq!(lines[0]["fields"]["upstream"], "up");
    assert_eq!(lines[1]["fields"]["status"], 200);
    assert!(lines[1]["fields"]["took_ms"].is_number());
    assert_eq!(lines[3]["fields"]["status"], 404);
    let r = s.get("/metrics").await;
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let metrics = r.text().await.unwrap();
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics: {metrics}");
    assert!(
        metrics.contains("symhub_requests_total{outcome=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("symhub_upstream_requests_total{upstream=\"up\",status=\"200\"} 1"),
        "{metrics}"
    );
}

/// What a log line says of a `HEAD` answered 404 (its body is never sent: complete), a
/// `POST` to a symbol path (405, outcome `refused`, counted) and a hostile 40 KB path (cut).
#[tokio::test]
async fn log_lines_of_heads_refusals_and_hostile_paths() {
    let s = Symhub::start("upstream = []\n[server]\nlog_format = \"json\"");
    let r = client()
        .head(format!("{}/nope.pdb/1/nope.pdb", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .post(format!("{}/nope.pdb/1/nope.pdb", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let hostile = format!("/{}/1/x.pdb", "a".repeat(40_000));
    assert_eq!(s.get(&hostile).await.status(), 404);
    let lines = symbol_lines(&s).await;
    let fields: Vec<_> = lines
        .iter()
        .map(|v| {
            let f = &v["fields"];
            serde_json::json!([f["method"], f["outcome"], f["status"], f["body"]])
        })
        .collect();
    assert_eq!(
        fields,
        [
            serde_json::json!(["HEAD", "miss", 404, "complete"]),
            serde_json::json!(["POST", "refused", 405, "complete"]),
            serde_json::json!(["GET", "invalid", 404, "complete"]),
        ]
    );
    let key = lines[2]["fields"]["key"].as_str().unwrap();
    assert!(
        key.len() <= 4096 && key.starts_with("/aaaa"),
        "{}",
        key.len()
    );
    let asks = reqwest::Client::new().get(format!("{}/metrics", s.url));
    let metrics = asks.send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("symhub_requests_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
}

/// A request cut before it had a response still gets its log line, with nginx's 499: here
/// one whose client gave up while the upstream was slow to answer, and one still waiting
/// when the grace period of a shutdown ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_before_its_response_is_logged() {
    let up = FakeUpstream::start().await;
    let gone = "/gone.pdb/0123456789ABCDEF0123456789ABCDEF1/gone.pdb";
    let stopped = "/stopped.pdb/0123456789ABCDEF0123456789ABCDEF1/stopped.pdb";
    for path in [gone, stopped] {
        up.route(
            path,
            Behavior::Serve(Serve::bytes(data(100, 1)).delay(Duration::from_secs(3))),
        );
    }
    let mut s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        "[server]\nlog_format = \"json\"\nshutdown_grace = \"1s\"",
    ));
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut client_gone = std::net::TcpStream::connect(&addr).unwrap();
    write!(client_gone, "GET {gone} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let url = format!("{}{stopped}", s.url);
    let waiting = tokio::spawn(async move { client().get(&url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(client_gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut = |stderr: &str, path: &str| {
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["path"] == path && v["fields"]["status"] == 499)
            .count()
    };
    assert_eq!(cut(&s.stderr(), gone), 1, "{}", s.stderr());
    tokio::task::block_in_place(|| s.terminate(Duration::from_secs(8))).expect("exited");
    assert!(waiting.await.unwrap().is_err(), "the request was cut");
    assert_eq!(cut(&s.stderr(), stopped), 1, "{}", s.stderr());
}

/// A reader of the log that goes away (a `| head` that exits, a crashed collector) costs the
/// log, not the service: requests are answered and SIGTERM ends the server with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_costs_the_log_not_the_service() {
    use std::io::BufRead;
    /// Killed however the test ends: a server that ignores SIGTERM must not outlive it.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut server = Reaped(
        std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut server.0;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("symhub: listening on ")
        .unwrap()
        .to_owned();
    // Both readers are gone now: every later write to stdout or stderr fails.
    drop(child.stderr.take());
    for _ in 0..3 {
        let r = client().get(format!("{url}/healthz")).send().await;
        assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200));
    }
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exited after SIGTERM"
    );
}
