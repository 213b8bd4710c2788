//! A full disk: symhub's data dir on a small tmpfs (mounted here when running as root;
//! skipped with a message otherwise). A fill and an upload that run out of space fail
//! cleanly, nothing half-written is kept or served, and hits keep being served; a download
//! that finds the disk full makes eviction free the room it lacked.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<(Self, tempfile::TempDir)> {
        let dir = tempfile::tempdir().ok()?;
        let at = dir.path().join("fs");
        std::fs::create_dir(&at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| (Self(at), dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_hits_keep_working() {
    let Some((fs, _dir)) = Tmpfs::mount("24m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN; running as root: {})",
            is_root()
        );
        return;
    };
    let up = FakeUpstream::start().await;
    let small = data(200_000, 1);
    let big = data(40 << 20, 2);
    up.serve("/small.pdb/1/small.pdb", small.clone());
    up.serve("/big.pdb/1/big.pdb", big.clone());
    let key = "fullkey";
    let config = format!(
        "{}{}",
        auth_config(key),
        config_with(&[("up", &up.url, "")], "")
    );
    let mut s = Symhub::start_in(&config, fs.path().join("data"));
    assert_eq!(
        s.get("/small.pdb/1/small.pdb").await.bytes().await.unwrap(),
        small
    );

    // A fill bigger than the disk: the client sees a cut stream, never short bytes as a
    // complete answer, and nothing is cached.
    let r = s.get("/big.pdb/1/big.pdb").await;
    let got = r.bytes().await;
    assert!(
        got.is_err(),
        "40 MiB cannot fit in 24: the stream is cut, never short-but-complete"
    );
    let r = s.get("/big.pdb/1/big.pdb").await;
    assert_ne!(
        r.headers().get("x-cache").map(|v| v.to_str().unwrap()),
        Some("HIT")
    );
    drop(r);

    // An upload bigger than what is left: a clean 507 with a JSON reason, nothing stored.
    let sym = format!(
        "MODULE Linux x86_64 37DBF1D89E79D021896EB8F060CBFF050 hello\n{}",
        "PUBLIC 1000 0 x\n".repeat(2_000_000)
    );
    let r = client()
        .post(format!("{}/symupload?key={key}", s.url))
        .header("content-type", "multipart/form-data; boundary=XX")
        .body(format!(
            "--XX\r\nContent-Disposition: form-data; name=\"debug_file\"\r\n\r\nhello\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"debug_identifier\"\r\n\r\n37DBF1D89E79D021896EB8F060CBFF050\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"symbol_file\"; filename=\"h.sym\"\r\n\r\n{sym}\r\n--XX--\r\n"
        ))
        .send()
        .await;
    // The server may answer before reading the whole body and close; then the client sees
    // an error instead of the answer, which is clean too.
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 507);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["error"], "insufficient_storage");
    }
    assert_eq!(
        s.get("/hello/37DBF1D89E79D021896EB8F060CBFF050/hello.sym")
            .await
            .status(),
        404
    );

    // Hits keep working, and the partial files are gone, so the space is back.
    let r = s.get("/small.pdb/1/small.pdb").await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), small);
    assert!(walk(&fs.path().join("data/cache/tmp")).is_empty());
    assert!(walk(&fs.path().join("data/store/tmp")).is_empty());
    s.kill();
}

/// A `cache.max_size` bigger than the disk (the default 200 GiB on a small one): a download
/// that finds the disk full is cut, and least recently used files are evicted to make the
/// room it lacked, so asking again gets it whole and cached; the other files stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_evicts_what_a_download_lacked_and_the_next_try_is_cached() {
    let Some((fs, _dir)) = Tmpfs::mount("24m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let up = FakeUpstream::start().await;
    let files: Vec<(String, bytes::Bytes)> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("/{n}.pdb/1/{n}.pdb"), data(10 << 20, 10 + i as u64)))
        .collect();
    for (path, body) in &files {
        up.serve(path, body.clone());
    }
    let mut s = Symhub::start_in(
        &config_with(&[("up", &up.url, "")], ""),
        fs.path().join("data"),
    );
    for (path, body) in &files[..2] {
        assert!(s.get(path).await.bytes().await.unwrap() == *body);
    }
    assert_eq!(s.get(&files[1].0).await.headers()["x-cache"], "HIT");
    // 20 MiB cached on a 24 MiB disk: the third does not fit, at first.
    let (c, body) = &files[2];
    let first = s.get(c).await.bytes().await;
    assert!(first.is_err(), "cut, never short-but-complete");
    assert!(
        s.stderr().contains("the cache's disk is full"),
        "{}",
        s.stderr()
    );
    let started = std::time::Instant::now();
    loop {
        let r = s.get(c).await;
        if let Ok(got) = r.bytes().await {
            assert!(got == *body);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never fit: {}",
            s.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(s.get(c).await.headers()["x-cache"], "HIT");
    // The least recently used went; the other stayed.
    assert_eq!(s.get(&files[1].0).await.headers()["x-cache"], "HIT");
    assert_ne!(s.get(&files[0].0).await.headers()["x-cache"], "HIT");
    s.kill();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
