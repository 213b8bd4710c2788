//! Hostile and invalid paths: 404, no upstream traffic, nothing written anywhere; and no
//! secret on a public page.

use std::time::Duration;

use crate::support::*;

const KEY: &str = "security-test-key";

// Multi-threaded: the raw requests block, and the fake upstream must still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_traversal_paths_answer_404_and_touch_nothing() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let outside = s.data_dir.parent().unwrap().to_path_buf();
    let canary = outside.join("canary");
    std::fs::write(&canary, b"untouched").unwrap();
    let before = s.files();
    let outside_before = walk(&outside).len();

    let long = "a".repeat(300);
    let many = "a/".repeat(2000);
    let paths: Vec<Vec<u8>> = vec![
        b"/../../canary/x".to_vec(),
        b"/foo.pdb/../../../canary".to_vec(),
        b"/%2e%2e/%2e%2e/canary".to_vec(),
        b"/foo.pdb/%2E%2E/foo.pdb".to_vec(),
        b"/foo.pdb/..%2f..%2fcanary/foo.pdb".to_vec(),
        b"/foo.pdb/%252e%252e/x".to_vec(),
        b"/foo.pdb/%c0%ae%c0%ae/foo.pdb".to_vec(),
        b"/foo.pdb/abc/..%5c..%5ccanary".to_vec(),
        b"/foo.pdb\\..\\canary/1/foo.pdb".to_vec(),
        b"/foo.pdb/a%00b/foo.pdb".to_vec(),
        b"/foo.pdb/a%0d%0ab/foo.pdb".to_vec(),
        b"/foo.pdb/%ff%fe/foo.pdb".to_vec(),
        b"//etc/passwd/x".to_vec(),
        b"/foo.pdb//foo.pdb".to_vec(),
        b"/foo.pdb/1/foo.pdb/extra".to_vec(),
        b"/foo.pdb".to_vec(),
        format!("/{long}/1/{long}").into_bytes(),
        format!("/{many}").into_bytes(),
        b"/index2.txt".to_vec(),
        b"/pingme.txt".to_vec(),
        b"/000Admin/history.txt".to_vec(),
        b"/foo.pdb/1/refs.ptr".to_vec(),
    ];
    for p in &paths {
        let answer = raw_get(&s.url, p);
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.contains(" 404 ") || status_line.contains(" 400 "),
            "{}: {status_line}",
            String::from_utf8_lossy(p)
        );
        assert!(!status_line.contains(" 5"), "never a 5xx");
    }
    // The percent-encoded `%252e%252e` segment decodes once to a literal `%2e%2e` name, a
    // valid (if odd) key: it may be asked upstream, encoded, but nothing else may be.
    let asked: Vec<_> = up.requests().into_iter().map(|(p, _)| p).collect();
    assert!(
        asked.iter().all(|p| p == "/foo.pdb/%252e%252e/x"),
        "{asked:?}"
    );
    assert_eq!(std::fs::read(&canary).unwrap(), b"untouched");
    // `/` is not a symbol path: it leads a browser to the console.
    let root = raw_get(&s.url, b"/");
    assert!(root.starts_with("HTTP/1.1 303 "), "{root}");
    assert!(
        root.to_ascii_lowercase().contains("location: /ui/"),
        "{root}"
    );
    assert_eq!(
        walk(&outside).len(),
        outside_before,
        "nothing new outside the data dir"
    );
    let after: Vec<_> = s.files();
    let new: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f) && !f.to_string_lossy().contains("index.sqlite3"))
        .collect();
    assert!(new.is_empty(), "invalid requests wrote {new:?}");
    assert!(s.objects().is_empty());
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn methods_other_than_get_and_head_are_refused() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let r = client()
        .post(format!("{}/foo.pdb/1/foo.pdb", s.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(up.total_hits(), 0);
}

/// The public Status answer shows upstreams without the credentials in their URLs (sent as
/// Basic credentials), and with downloads behind a key, not the keys being downloaded
/// (break-it pass: both were readable without a key).
#[tokio::test]
async fn the_public_status_holds_no_credentials_and_no_private_key_names() {
    let up = FakeUpstream::start().await;
    let slow = "/secret-project.pdb/0123456789ABCDEF0123456789ABCDEF1/secret-project.pdb";
    up.route(
        slow,
        Behavior::Serve(Serve::bytes(data(50_000, 1)).drip(20, Duration::from_millis(50))),
    );
    let with_user = up
        .url
        .replacen("http://", "http://builduser:S3cretPassw0rd@", 1);
    let extra = format!("{}require_for_downloads = true\n", auth_config(KEY));
    let s = Symhub::start(&config_with(&[("corp", &with_user, "")], &extra));
    // A download in progress, by a key holder.
    let fill = tokio::spawn({
        let url = format!("{}{slow}", s.url);
        async move {
            client()
                .get(url)
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        let r = client()
            .get(format!("{}/api/status", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        if !v["fills"].as_array().unwrap().is_empty() {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fill in progress: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = status.to_string();
    assert!(
        !text.contains("S3cret") && !text.contains("builduser"),
        "{text}"
    );
    assert!(!text.contains("secret-project"), "{text}");
    assert!(status["upstreams"][0]["url"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
    // A key holder sees what is being downloaded.
    let r = client()
        .get(format!("{}/api/status", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v.to_string().contains("secret-project"), "{v}");
    fill.await.unwrap().unwrap();
    // The credentials still reach the upstream.
    assert!(up
        .requests()
        .iter()
        .any(|(path, headers)| path == slow && headers.contains_key("authorization")));
}
