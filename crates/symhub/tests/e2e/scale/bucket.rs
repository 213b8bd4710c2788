//! The bucket side of the rig: s3s-fs serving one bucket from a directory (stopped and
//! started again for outages), and `Pipe`, a TCP relay in front of it that slows down or
//! holds back what the bucket sends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, missing, wait_port, ACCESS, BUCKET, SECRET};
use crate::support::walk;

/// s3s-fs serving one bucket from a directory.
pub(super) struct S3 {
    child: Option<Child>,
    pub(super) port: u16,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3 {
    pub(super) fn start() -> Option<Self> {
        if Command::new("s3s-fs").arg("--version").output().is_err() && missing("s3s-fs") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let mut s = Self {
            child: None,
            port: free_port(),
            root,
            _dir: dir,
        };
        s.spawn();
        Some(s)
    }

    pub(super) fn spawn(&mut self) {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_port(self.port, "s3s-fs");
    }

    pub(super) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Files under `prefix/rel` in the bucket.
    pub(super) fn objects(&self, rel: &str) -> Vec<PathBuf> {
        walk(&self.root.join(BUCKET).join("team").join(rel))
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay in front of the bucket that can slow down or hold back what the bucket
/// sends, and counts it: the bucket made slow or silent without touching it.
pub(super) struct Pipe {
    port: u16,
    /// Bytes per second from the bucket to symhub; 0 holds everything back.
    rate: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bytes relayed from the bucket so far.
    relayed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Holds back what symhub sends the bucket (its requests) while set.
    hold_requests: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bytes symhub has sent toward the bucket (held back or not).
    requested: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipe {
    pub(super) async fn start(target: u16, rate: u64) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(AtomicU64::new(rate));
        let relayed = Arc::new(AtomicU64::new(0));
        let hold_requests = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requested = Arc::new(AtomicU64::new(0));
        let (r, n, h, q) = (
            rate.clone(),
            relayed.clone(),
            hold_requests.clone(),
            requested.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (hold, requested) = (h.clone(), q.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(got @ 1..) = cr.read(&mut buf).await {
                        requested.fetch_add(got as u64, Ordering::Relaxed);
                        while hold.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        if sw.write_all(&buf[..got]).await.is_err() {
                            return;
                        }
                    }
                });
                let (rate, relayed) = (r.clone(), n.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        // Slices of 10 ms at the current rate.
                        let bps = rate.load(Ordering::Relaxed).max(1);
                        let slice = ((bps / 100) as usize).clamp(1, buf.len());
                        let Ok(got) = sr.read(&mut buf[..slice]).await else {
                            return;
                        };
                        // Held back while the rate is 0, even if read before it was set.
                        let bps = loop {
                            match rate.load(Ordering::Relaxed) {
                                0 => tokio::time::sleep(Duration::from_millis(20)).await,
                                bps => break bps,
                            }
                        };
                        if got == 0 || cw.write_all(&buf[..got]).await.is_err() {
                            return;
                        }
                        relayed.fetch_add(got as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs_f64(got as f64 / bps as f64)).await;
                    }
                });
            }
        });
        Self {
            port,
            rate,
            relayed,
            hold_requests,
            requested,
            task,
        }
    }

    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(super) fn set_rate(&self, bps: u64) {
        self.rate.store(bps, std::sync::atomic::Ordering::Relaxed);
    }

    /// Holds symhub's requests to the bucket back (`true`) or lets them through.
    pub(super) fn hold_requests(&self, hold: bool) {
        self.hold_requests
            .store(hold, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes symhub has sent toward the bucket so far.
    pub(super) fn requested(&self) -> u64 {
        self.requested.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn relayed(&self) -> u64 {
        self.relayed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
