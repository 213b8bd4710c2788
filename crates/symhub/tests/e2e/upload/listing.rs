//! `symhub upload` of a directory of symbols (and again, skipping what is there) and the
//! `/api/symbols` listing, with prefixes and pages.

use super::KEY;
use crate::support::*;

#[tokio::test]
async fn listing_and_the_upload_subcommand() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let symbols = fixtures().join("breakpad/symbols");
    let url = s.url.clone();
    let run = move || {
        std::process::Command::new(bin())
            .args(["upload", "--url", &url, "--key", KEY])
            .arg(&symbols)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 uploaded, 0 skipped (already there), 0 failed"),
        "{stdout}"
    );
    let out = tokio::task::spawn_blocking(run).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 uploaded, 4 skipped"), "{stdout}");

    let list: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/symbols?prefix=TEST_APP&key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let rows = list["symbols"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["key"],
        "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
    );
    assert_eq!(rows[0]["size"], 818134);
    assert!(rows[0]["sha256"].as_str().unwrap().len() == 64);
    assert!(rows[0]["uploaded_at"].as_str().unwrap().ends_with('Z'));
    let all: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/symbols?key={KEY}&limit=3"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(all["symbols"].as_array().unwrap().len(), 3);
    assert!(
        all["next"].is_string(),
        "a full page says where the next one starts"
    );
}

/// An upload whose stdout reader went away (`| head`, a log collector that died) sends
/// every file and ends well: it once panicked on its first line and left a transaction
/// that looked like a whole release with a few of its files (break-it pass).
#[tokio::test]
async fn an_upload_whose_output_pipe_closed_still_sends_everything() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let symbols = fixtures().join("breakpad/symbols");
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(bin())
            .args(["upload", "--url", &url, "--key", KEY, "--product", "p"])
            .arg(&symbols)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the first line.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let list: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/symbols?key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list["symbols"].as_array().unwrap().len(), 4, "{list}");
}

/// Ctrl-C in the middle of a run stops it with a message naming the transaction left
/// incomplete and what to do (break-it pass: it exited silently, leaving a transaction
/// that looked like a whole release).
#[tokio::test]
async fn an_interrupted_upload_names_the_incomplete_transaction() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3000u32 {
        let text = format!("MODULE Linux x86_64 {i:032X}0 m{i}\nPUBLIC 1000 0 f\n");
        std::fs::write(dir.path().join(format!("m{i}.sym")), text).unwrap();
    }
    let url = s.url.clone();
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let child = std::process::Command::new(bin())
            .args([
                "upload",
                "-j",
                "1",
                "--url",
                &url,
                "--key",
                KEY,
                "--product",
                "p",
            ])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let int = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(int.success());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the run finished before Ctrl-C: make it longer"
    );
    assert!(
        stderr.contains("interrupted after") && stderr.contains("symhub delete --transaction"),
        "{stderr}"
    );
}
