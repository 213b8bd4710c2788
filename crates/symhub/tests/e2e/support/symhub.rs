//! The real `symhub` binary as a test harness: started on a fresh data dir with a config,
//! restarted, killed or terminated, asked over HTTP once its downloads have settled, and
//! looked into (metrics, stderr, files on disk).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{client, walk};

pub struct Symhub {
    pub url: String,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub listen: String,
    child: Option<Child>,
    pub stderr_path: PathBuf,
    /// Extra environment of the process (credentials from the environment).
    pub env: Vec<(String, String)>,
    _dir: Arc<tempfile::TempDir>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_symhub")
}

/// A server started with exactly these flags (for tests of the flags themselves). Returns
/// the child and the URL from its `listening` line; the caller kills it.
pub fn spawn_serve(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("symhub: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

impl Symhub {
    /// Starts symhub with `config` (TOML without `[server] listen` and `[storage]`, which the
    /// harness sets) on a fresh data dir.
    pub fn start(config: &str) -> Self {
        Self::start_on(config, "127.0.0.1:0")
    }

    pub fn start_on(config: &str, listen: &str) -> Self {
        Self::start_full(config, listen, None)
    }

    /// With the data dir somewhere of the test's choosing (a small filesystem).
    pub fn start_in(config: &str, data_dir: PathBuf) -> Self {
        Self::start_full(config, "127.0.0.1:0", Some(data_dir))
    }

    /// With extra environment variables.
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full_env(config, "127.0.0.1:0", None, env)
    }

    fn start_full(config: &str, listen: &str, data_dir: Option<PathBuf>) -> Self {
        Self::start_full_env(config, listen, data_dir, &[])
    }

    fn start_full_env(
        config: &str,
        listen: &str,
        data_dir: Option<PathBuf>,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let config_path = dir.path().join("symhub.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut s = Self {
            url: String::new(),
            data_dir,
            config_path,
            listen: listen.to_owned(),
            child: None,
            stderr_path: dir.path().join("stderr.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .unwrap();
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            // The machine's own federation setting must not reach the server under test.
            .env_remove("DEBUGINFOD_URLS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("symhub did not start: {}", self.stderr()));
        let addr = line
            .strip_prefix("symhub: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.url = addr.to_owned();
        self.child = Some(child);
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops (SIGKILL) and starts again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        if let Some(addr) = self.url.strip_prefix("http://") {
            self.listen = addr.to_owned();
        }
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        None
    }

    /// GET once every download in progress has committed, so a test sees settled state:
    /// a response ends when its last byte is sent, a moment before the commit (fsync,
    /// rename) that makes the next request a HIT. Concurrency tests use `client()` directly.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.settle().await;
        self.get_now(path).await
    }

    pub async fn get_now(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let text = self.get_now("/metrics").await.text().await.unwrap();
            let busy = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("symhub_fills_in_flight ")?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0);
            if busy == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Opens a sym-upload-v2 session with `key` and returns its upload URL.
    pub async fn create_upload(&self, key: &str) -> String {
        let r = client()
            .post(format!("{}/v1/uploads:create?key={key}", self.url))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        v["uploadUrl"].as_str().unwrap().to_owned()
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_slice(&self.get(path).await.bytes().await.unwrap()).unwrap()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        self.settle().await;
        let text = self.get_now("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Every regular file below the data dir, relative.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(&self.data_dir)
            .into_iter()
            .map(|p| p.strip_prefix(&self.data_dir).unwrap().to_path_buf())
            .collect()
    }

    /// The cached objects (bodies) on disk, with their sizes.
    pub fn objects(&self) -> Vec<(PathBuf, u64)> {
        walk(&self.data_dir.join("cache/objects"))
            .into_iter()
            // An object may be evicted between the listing and the stat.
            .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
            .collect()
    }
}

impl Drop for Symhub {
    fn drop(&mut self) {
        self.kill();
    }
}
