//! Scale-out: two symhub instances on one S3-compatible bucket (a real s3s-fs server, which
//! checks request signatures) and one PostgreSQL (a throwaway cluster per test). Uploads,
//! packages and upload sessions cross instances; a bucket outage fails fast and heals.
//! `scripts/test` installs s3s-fs and PostgreSQL and sets SYMHUB_REQUIRE_TOOLS=1, so these
//! tests cannot silently skip there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::packages::{index, make_zip};
use crate::support::*;

const KEY: &str = "scalekey";
const ACCESS: &str = "symhub-test";
const SECRET: &str = "symhub-test-secret-0123456789";
const BUCKET: &str = "symbols";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn missing(tool: &str) -> bool {
    assert!(
        std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
        "{tool} is not installed; scripts/test installs it"
    );
    eprintln!("SKIPPED: {tool} not installed (run ./scripts/test)");
    true
}

/// s3s-fs serving one bucket from a directory.
struct S3 {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3 {
    fn start() -> Option<Self> {
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

    fn spawn(&mut self) {
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

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Files under `prefix/rel` in the bucket.
    fn objects(&self, rel: &str) -> Vec<PathBuf> {
        walk(&self.root.join(BUCKET).join("team").join(rel))
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway PostgreSQL cluster (as the `postgres` user when the test runs as root,
/// because PostgreSQL refuses to run as root).
struct Pg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    tls: bool,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn as_pg_user(bin: &Path, tool: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

/// A CA and a certificate it signed for 127.0.0.1, made with the openssl command.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "2", "-subj", "/CN=symhub test CA"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=127.0.0.1"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

impl Pg {
    fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// With `tls`, the server accepts TLS connections only, with a certificate signed by the
    /// CA in `ca_file()`.
    fn start_with(tls: bool) -> Option<Self> {
        let Some(bin) = pg_bin() else {
            missing("PostgreSQL");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pg");
        std::fs::create_dir_all(&data).unwrap();
        if tls {
            make_certificates(dir.path());
        }
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status();
        let ok = as_pg_user(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "symhub",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        if tls {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
        }
        let pg = Self {
            bin,
            data,
            port: free_port(),
            tls,
            _dir: dir,
        };
        pg.resume();
        Some(pg)
    }

    /// Starts the server (again) on the same port and data.
    fn resume(&self) {
        let dir = self._dir.path();
        let ok = as_pg_user(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(dir.join("pg.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
                self.port,
                dir.display(),
                if self.tls {
                    format!(
                        "-c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                        dir.display()
                    )
                } else {
                    String::new()
                }
            ))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "PostgreSQL did not start");
    }

    /// Stops the server at once, as a crash or a lost network would.
    fn stop(&self) {
        let _ = as_pg_user(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://symhub@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bucket, a database, and two instances on them: A reads its credentials from files,
/// B from the environment.
struct Cluster {
    /// A's config: the shared store with credentials from files.
    a_config: String,
    a: Symhub,
    b: Symhub,
    s3: S3,
    pg: Pg,
    _creds: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Option<Self> {
        let s3 = S3::start()?;
        let pg = Pg::start()?;
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("id"), format!("{ACCESS}\n")).unwrap();
        std::fs::write(creds.path().join("secret"), format!("{SECRET}\n")).unwrap();
        let base = shared_config(&pg, &s3.endpoint(), "");
        let a_config = format!(
            "{base}access_key_id_file = \"{}\"\nsecret_access_key_file = \"{}\"\n",
            creds.path().join("id").display(),
            creds.path().join("secret").display()
        );
        let a = Symhub::start(&a_config);
        let b = Symhub::start_env(&base, &CREDS_ENV);
        Some(Self {
            a_config,
            a,
            b,
            s3,
            pg,
            _creds: creds,
        })
    }

    /// One more instance on the same database, reaching the bucket through `endpoint` (a
    /// [`Pipe`] in front of it), with extra `[storage.s3]` lines.
    fn another(&self, endpoint: &str, s3_extra: &str) -> Symhub {
        Symhub::start_env(&shared_config(&self.pg, endpoint, s3_extra), &CREDS_ENV)
    }
}

const CREDS_ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", ACCESS),
    ("AWS_SECRET_ACCESS_KEY", SECRET),
];

fn shared_config(pg: &Pg, endpoint: &str, s3_extra: &str) -> String {
    format!(
        "upstream = []\n{}[storage]\nstore = \"s3://{BUCKET}/team\"\ndatabase = \"{}\"\n\
         [storage.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nconnect_timeout = \"1s\"\n\
         local_cache_size = \"64 MiB\"\n{s3_extra}",
        auth_config(KEY),
        pg.url(),
    )
}

/// A TCP relay in front of the bucket that can slow down or hold back what the bucket
/// sends, and counts it: the bucket made slow or silent without touching it.
struct Pipe {
    port: u16,
    /// Bytes per second from the bucket to symhub; 0 holds everything back.
    rate: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bytes relayed from the bucket so far.
    relayed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipe {
    async fn start(target: u16, rate: u64) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(AtomicU64::new(rate));
        let relayed = Arc::new(AtomicU64::new(0));
        let (r, n) = (rate.clone(), relayed.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
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
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_rate(&self, bps: u64) {
        self.rate.store(bps, std::sync::atomic::Ordering::Relaxed);
    }

    fn relayed(&self) -> u64 {
        self.relayed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sym(name: &str, id: &str) -> String {
    format!(
        "MODULE Linux x86_64 {id} {name}\nINFO CODE_ID D8F1DB379E2179D0896EB8F060CBFF0576178C03\n\
         FILE 0 /src/{name}.c\nFUNC 1139 1c 0 add\n1139 14 2 0\nPUBLIC 1000 0 _init\n"
    )
}

/// A sym-upload-v1 multipart POST of a `.sym` made by [`sym`].
async fn upload_v1(s: &Symhub, text: &str) -> reqwest::Response {
    let module: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
    let (id, name) = (module[3], module[4]);
    let fields = [
        ("code_file", name),
        ("cpu", "x86_64"),
        ("debug_file", name),
        ("debug_identifier", id),
        ("os", "Linux"),
    ];
    let (ct, body) = crate::upload::multipart(&fields, text.as_bytes());
    client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A `.sym` made by [`sym`], uploaded through `s`: its text and its URL path.
async fn store_sym(s: &Symhub, name: &str, id: &str) -> (String, String) {
    let text = sym(name, id);
    assert_eq!(upload_v1(s, &text).await.status(), 200, "{}", s.stderr());
    (text, format!("/{name}/{id}/{name}.sym"))
}

/// Polls `path` on `s` until it answers `status` (another instance's change is seen within
/// the change poll, 250 ms) and returns how long that took.
async fn until_status(s: &Symhub, path: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        let r = client()
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        if r.status() == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path}: still {} after 5 s",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_bucket_answer_identically() {
    let Some(c) = Cluster::start() else { return };
    let id = "37DBF1D89E79D021896EB8F060CBFF050";
    let text = sym("hello", id);
    let path = format!("/hello/{id}/hello.sym");
    // B is asked first, so it has a remembered miss to forget.
    assert_eq!(c.b.get(&path).await.status(), 404);

    // Upload through A, read through B.
    let r = upload_v1(&c.a, &text).await;
    assert_eq!(r.status(), 200, "{}", c.a.stderr());
    let seen = until_status(&c.b, &path, 200).await;
    eprintln!("upload on A visible on B after {seen:?}");
    let r = c.b.get(&path).await;
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), text);
    assert_eq!(
        c.s3.objects("blobs").len(),
        1,
        "the bytes are in the bucket"
    );
    assert!(
        walk(&c.a.data_dir.join("store/objects")).is_empty(),
        "and not in A's data dir"
    );

    // A v2 upload whose PUT goes to B and whose complete goes back to A.
    let id2 = "0123456789ABCDEF0123456789ABCDEF0";
    let text2 = sym("other", id2);
    let upload_url = c.a.create_upload(KEY).await;
    let put_path = upload_url.split_once("/_upload/").unwrap().1;
    let r = client()
        .put(format!("{}/_upload/{put_path}", c.b.url))
        .body(text2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upload_key = put_path.split('/').next().unwrap();
    let r = client()
        .post(format!("{}/v1/uploads/{upload_key}:complete?key={KEY}", c.a.url))
        .body(format!(
            "{{\"symbol_id\": {{\"debug_file\": \"other\", \"debug_id\": \"{id2}\"}}, \"symbol_upload_type\": \"BREAKPAD\"}}"
        ))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("\"OK\""), "{body}");
    let status =
        c.b.json(&format!("/v1/symbols/other/{id2}:checkStatus?key={KEY}"))
            .await;
    assert_eq!(status["status"], "FOUND");
    assert_eq!(
        c.b.get(&format!("/other/{id2}/other.sym"))
            .await
            .text()
            .await
            .unwrap(),
        text2
    );
    assert!(
        c.s3.objects("uploads").is_empty(),
        "the session's body is gone"
    );
    let listed = c.b.json(&format!("/api/symbols?key={KEY}")).await;
    assert_eq!(
        listed["symbols"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // A package ingested through A is served by B; removed through B, it is gone on A.
    let pkg_key = "foo.pdb/0123456789abcdef0123456789abcdef1/foo.pdb";
    let blob = data(300_000, 7);
    let zip = make_zip(&[
        ("symbol_index.json", &index(&[(pkg_key, "blobs/foo.pdb")])),
        ("blobs/foo.pdb", &blob),
    ]);
    let pkg_path = format!("/{pkg_key}");
    assert_eq!(c.a.get(&pkg_path).await.status(), 404);
    let r = client()
        .put(format!("{}/api/packages/team-pkg", c.a.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    until_status(&c.b, &pkg_path, 200).await;
    assert_eq!(c.b.get(&pkg_path).await.bytes().await.unwrap(), blob);
    let listed = c.b.json(&format!("/api/packages?key={KEY}")).await;
    assert!(listed.to_string().contains("team-pkg"), "{listed}");
    let r = client()
        .delete(format!("{}/api/packages/team-pkg", c.b.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let gone = until_status(&c.a, &pkg_path, 404).await;
    eprintln!("removal on B seen on A after {gone:?}");
    assert_eq!(
        c.s3.objects("blobs").len(),
        2,
        "the package's blob left the bucket; the two uploads stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_outage_fails_fast_keeps_local_hits_and_heals() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let id = "11112222333344445555666677778888A";
    let text = sym("outage", id);
    let path = format!("/outage/{id}/outage.sym");
    assert_eq!(upload_v1(&c.a, &text).await.status(), 200);

    c.s3.stop();
    // A wrote the file and keeps a local copy: still served.
    let r = c.a.get(&path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), text);
    // B never had it.
    assert_unavailable(&c.b, &path, Duration::from_secs(8)).await;
    assert_degraded(&c.b, "bucket_ok").await;
    // Writes answer 503 with JSON.
    assert_storage_unavailable(
        upload_v1(&c.b, &sym("late", "99998888777766665555444433332222A")).await,
    )
    .await;

    // Storage returns: everything works again without a restart.
    c.s3.spawn();
    until_status(&c.b, &path, 200).await;
    assert_eq!(c.b.get(&path).await.text().await.unwrap(), text);
    let health = c.b.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
    let r = upload_v1(&c.b, &sym("late", "99998888777766665555444433332222A")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_ingest_leaves_nothing_partial_for_the_others() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    // Many entries, so the kill lands while blobs are being uploaded to the bucket.
    let blobs: Vec<(String, bytes::Bytes)> = (0..24)
        .map(|i| (format!("blobs/f{i}.pdb"), data(1_000_000 + i, i as u64)))
        .collect();
    let keys: Vec<String> = (0..24)
        .map(|i| format!("f{i}.pdb/{:032X}1/f{i}.pdb", i + 1))
        .collect();
    let pairs: Vec<(&str, String)> = keys
        .iter()
        .zip(&blobs)
        .map(|(k, (n, _))| (k.as_str(), n.clone()))
        .collect();
    let pairs_ref: Vec<(&str, &str)> = pairs.iter().map(|(k, b)| (*k, b.as_str())).collect();
    let idx = index(&pairs_ref);
    let mut entries: Vec<(&str, &[u8])> = vec![("symbol_index.json", &idx)];
    entries.extend(blobs.iter().map(|(n, b)| (n.as_str(), b.as_ref())));
    let zip = make_zip(&entries);
    for delay_ms in [120u64, 220, 320] {
        let url = format!("{}/api/packages/big", c.a.url);
        let body = zip.clone();
        let ingest = tokio::spawn(async move {
            client()
                .put(url)
                .bearer_auth(KEY)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        c.a.kill();
        let acked = matches!(ingest.await.unwrap(), Ok(201));
        // B may remember misses from the previous round for up to one change poll (250 ms).
        tokio::time::sleep(Duration::from_millis(600)).await;
        // All or nothing on B, byte for byte.
        let mut served = 0;
        for (k, (_, bytes)) in keys.iter().zip(&blobs) {
            let r = c.b.get(&format!("/{k}")).await;
            if r.status() == 200 {
                assert_eq!(&r.bytes().await.unwrap(), bytes, "{k}");
                served += 1;
            }
        }
        assert!(
            served == 0 || served == keys.len(),
            "{served} of {} keys visible after a kill at {delay_ms} ms",
            keys.len()
        );
        assert!(
            !acked || served == keys.len(),
            "an acknowledged ingest is whole"
        );
        eprintln!("kill at {delay_ms} ms: acked {acked}, {served} keys visible on B");
        c.a.restart();
    }
    // No temp file of A's survived its restarts.
    assert!(walk(&c.a.data_dir.join("store/bucket-cache/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_data_dir_into_the_bucket_resumably() {
    let Some(c) = Cluster::start() else { return };
    // A single-node symhub with an upload and a package.
    let mut single = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let id = "ABCDEF0123456789ABCDEF01234567890";
    let text = sym("single", id);
    assert_eq!(upload_v1(&single, &text).await.status(), 200);
    let pkg_key = "bar.pdb/00000000000000000000000000000ABC1/bar.pdb";
    let blob = data(2_000_000, 9);
    let zip = make_zip(&[
        ("symbol_index.json", &index(&[(pkg_key, "bar.pdb")])),
        ("bar.pdb", &blob),
    ]);
    let r = client()
        .put(format!("{}/api/packages/legacy", single.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    single.kill();

    let config = single.data_dir.with_file_name("shared.toml");
    std::fs::write(&config, &c.a_config).unwrap();
    let run = |data_dir: PathBuf, config: PathBuf| {
        let out = Command::new(bin())
            .arg("migrate")
            .arg("--from-data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (first, progress) = {
        let (d, c) = (single.data_dir.clone(), config.clone());
        tokio::task::spawn_blocking(move || run(d, c))
            .await
            .unwrap()
    };
    assert_eq!(first["migrated"]["blobs_sent"], 2, "{first}");
    assert_eq!(first["migrated"]["symbols"], 1);
    assert_eq!(first["migrated"]["packages"], 1);
    assert!(progress.contains("migrate: blobs: 2/2"), "{progress}");
    // Both instances serve what the single node had, byte for byte.
    until_status(&c.b, &format!("/single/{id}/single.sym"), 200).await;
    assert_eq!(
        c.b.get(&format!("/single/{id}/single.sym"))
            .await
            .text()
            .await
            .unwrap(),
        text
    );
    assert_eq!(
        c.a.get(&format!("/{pkg_key}")).await.bytes().await.unwrap(),
        blob
    );
    // A second run finds everything there and copies nothing.
    let (again, _) = {
        let (d, c) = (single.data_dir.clone(), config.clone());
        tokio::task::spawn_blocking(move || run(d, c))
            .await
            .unwrap()
    };
    assert_eq!(again["migrated"]["blobs_sent"], 0, "{again}");
    assert_eq!(again["migrated"]["blobs_present"], 2);
    assert_eq!(again["migrated"]["symbols"], 0);
    assert_eq!(again["migrated"]["packages_present"], 1);
}

/// A store key the instance cannot read now: a fast 404 UNAVAILABLE, never a hang and never
/// a 5xx (SymSrv clients stop probing a server after a 5xx).
async fn assert_unavailable(s: &Symhub, path: &str, within: Duration) {
    let start = Instant::now();
    let r = s.get_now(path).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "UNAVAILABLE");
    assert!(start.elapsed() < within, "{:?}", start.elapsed());
}

/// `/healthz` says degraded, with `part` of the store down.
async fn assert_degraded(s: &Symhub, part: &str) {
    let health = s.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"][part], false, "{health}");
}

/// A write refused because storage is down: 503 with the JSON error.
async fn assert_storage_unavailable(r: reqwest::Response) {
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"], "storage_unavailable", "{v}");
    assert!(v["message"].as_str().unwrap().contains("retry"), "{v}");
}

/// A package of one file, PUT through `s`.
async fn put_package(s: &Symhub, name: &str, key: &str, blob: &[u8]) {
    let zip = make_zip(&[
        ("symbol_index.json", &index(&[(key, "blobs/file")])),
        ("blobs/file", blob),
    ]);
    let r = client()
        .put(format!("{}/api/packages/{name}", s.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_instance_streams_bucket_files_as_they_arrive_and_checks_them() {
    use futures_util::StreamExt;
    let Some(c) = Cluster::start() else { return };
    let key = "big.pdb/ABCDEF0123456789ABCDEF01234567891/big.pdb";
    let blob = data(6 << 20, 21);
    put_package(&c.a, "big", key, &blob).await;
    // A third instance whose bucket sends 2 MiB/s: the whole file takes 3 s to arrive.
    let pipe = Pipe::start(c.s3.port, 2 << 20).await;
    let mut cold = c.another(&pipe.endpoint(), "");
    let url = format!("{}/{key}", cold.url);

    // Two clients at once: one download from the bucket, and both get bytes long before it
    // has all arrived.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.content_length(), Some(blob.len() as u64));
    let other = tokio::spawn(client().get(&url).send());
    let mut body = r.bytes_stream();
    let mut got = Vec::new();
    while got.len() < 1 << 20 {
        got.extend_from_slice(&body.next().await.unwrap().unwrap());
    }
    let relayed = pipe.relayed();
    assert!(
        relayed < blob.len() as u64 / 2,
        "the first MiB reached the client only after {relayed} bytes came from the bucket"
    );
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == blob, "streamed bytes differ");
    let other = other.await.unwrap().unwrap().bytes().await.unwrap();
    assert!(other == blob, "the joining client's bytes differ");
    assert!(
        pipe.relayed() < blob.len() as u64 * 3 / 2,
        "one download for two clients, {} bytes relayed",
        pipe.relayed()
    );

    // Now a local copy: served while the bucket says nothing at all.
    pipe.set_rate(0);
    let r = cold.get_now(&format!("/{key}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == blob);

    // A range of a file still in the bucket (the local copies start empty at each start).
    pipe.set_rate(1 << 30);
    cold.restart();
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .header("range", "bytes=5000000-5000999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 5000000-5000999/{}", blob.len()).as_str()
    );
    assert!(r.bytes().await.unwrap() == blob[5_000_000..5_001_000]);

    // A blob damaged in the bucket (same length, one byte flipped) is never served whole:
    // the response is cut before its last byte and no local copy is kept.
    cold.restart();
    let stored =
        c.s3.objects("blobs")
            .into_iter()
            .find(|p| std::fs::metadata(p).unwrap().len() == blob.len() as u64)
            .expect("the blob in the bucket");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[3_000_000] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut n = 0;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => n += c.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut && n < blob.len(),
        "a damaged blob was served whole ({n} bytes)"
    );
    // A range of it is not sent whole either: its last byte waits for the check.
    cold.settle().await;
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.bytes().await.is_err(),
        "a range of a damaged blob was served whole"
    );
    cold.settle().await;
    let copies: Vec<_> = walk(&cold.data_dir.join("store/bucket-cache"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 0)
        .collect();
    assert!(copies.is_empty(), "kept {copies:?}");
    assert!(cold.stderr().contains("not served"), "{}", cold.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_bucket_fails_fast_keeps_local_copies_and_heals() {
    let Some(c) = Cluster::start() else { return };
    let (t1, p1) = store_sym(&c.a, "quiet", "5151515151515151515151515151515A").await;
    let (t2, p2) = store_sym(&c.a, "loud", "6262626262626262626262626262626B").await;
    let pipe = Pipe::start(c.s3.port, 1 << 30).await;
    let slow = c.another(&pipe.endpoint(), "timeout = \"1s\"\n");
    assert_eq!(slow.get(&p2).await.text().await.unwrap(), t2);

    // The bucket accepts connections and then says nothing.
    pipe.set_rate(0);
    assert_unavailable(&slow, &p1, Duration::from_secs(5)).await;
    // What this instance already has a copy of is still served.
    assert_eq!(slow.get_now(&p2).await.text().await.unwrap(), t2);
    assert_degraded(&slow, "bucket_ok").await;
    let start = Instant::now();
    assert_storage_unavailable(
        upload_v1(&slow, &sym("hush", "7373737373737373737373737373737C")).await,
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );

    // The bucket speaks again: no restart needed.
    pipe.set_rate(1 << 30);
    until_status(&slow, &p1, 200).await;
    assert_eq!(slow.get(&p1).await.text().await.unwrap(), t1);
    let health = slow.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_hits_can_redirect_to_presigned_bucket_urls() {
    let Some(c) = Cluster::start() else { return };
    let key = "redir.pdb/0000000000000000000000000000ABCD1/redir.pdb";
    let blob = data(300_000, 5);
    put_package(&c.a, "redir", key, &blob).await;
    let r = c.another(&c.s3.endpoint(), "redirect = true\nredirect_ttl = \"2m\"\n");
    let resp = r.get(&format!("/{key}")).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/{BUCKET}/team/blobs/", c.s3.endpoint())),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    // The URL alone is enough: no credentials are sent (dotnet-symbol drops them).
    let fetched = client().get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(fetched.bytes().await.unwrap() == blob);
    // And it is really signed: a changed signature is refused by the bucket.
    let (head, sig) = location.split_once("X-Amz-Signature=").unwrap();
    let forged = format!("{head}X-Amz-Signature={}", sig.replace(['a', 'b'], "c"));
    assert_eq!(client().get(&forged).send().await.unwrap().status(), 403);
    // Proxy-cache misses and unknown keys are not redirected.
    let r2 = r
        .get("/nothing.pdb/0000000000000000000000000000DEAD1/nothing.pdb")
        .await;
    assert_eq!(r2.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_keeps_hits_and_heals() {
    let Some(c) = Cluster::start() else { return };
    let (t1, p1) = store_sym(&c.a, "seen", "8484848484848484848484848484848D").await;
    let (t2, p2) = store_sym(&c.a, "unseen", "9595959595959595959595959595959E").await;
    assert_eq!(c.b.get(&p1).await.text().await.unwrap(), t1);

    c.pg.stop();
    // What B has served stays served.
    assert_eq!(c.b.get_now(&p1).await.text().await.unwrap(), t1);
    // What it has not: a fast 404 that asks no upstream and is not remembered.
    assert_unavailable(&c.b, &p2, Duration::from_secs(5)).await;
    assert_degraded(&c.b, "database_ok").await;
    assert_storage_unavailable(
        upload_v1(&c.b, &sym("during", "A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6F")).await,
    )
    .await;

    c.pg.resume();
    until_status(&c.b, &p2, 200).await;
    assert_eq!(c.b.get(&p2).await.text().await.unwrap(), t2);
    let r = upload_v1(&c.b, &sym("during", "A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6F")).await;
    assert_eq!(r.status(), 200);
    let health = c.b.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_upload_leaves_nothing_and_its_sessions_go_on() {
    use futures_util::StreamExt;
    let Some(mut c) = Cluster::start() else {
        return;
    };
    // A v1 upload whose body is still arriving when A dies.
    let id = "B7B7B7B7B7B7B7B7B7B7B7B7B7B7B7B7A";
    let text = sym("dying", id);
    let fields = [
        ("code_file", "dying"),
        ("cpu", "x86_64"),
        ("debug_file", "dying"),
        ("debug_identifier", id),
        ("os", "Linux"),
    ];
    let (ct, body) = crate::upload::multipart(&fields, text.as_bytes());
    let (head, tail) = body.split_at(body.len() / 2);
    let (head, tail) = (
        bytes::Bytes::copy_from_slice(head),
        bytes::Bytes::copy_from_slice(tail),
    );
    let slow_body = futures_util::stream::iter([Ok::<_, std::io::Error>(head), Ok(tail)]).then(
        |chunk| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            chunk
        },
    );
    let url = format!("{}/symupload?key={KEY}", c.a.url);
    let upload = tokio::spawn(async move {
        client()
            .post(url)
            .header("content-type", ct)
            .body(reqwest::Body::wrap_stream(slow_body))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.a.kill();
    assert!(
        !matches!(upload.await.unwrap(), Ok(200)),
        "acked by a dead instance"
    );
    let path = format!("/dying/{id}/dying.sym");
    assert_eq!(c.b.get(&path).await.status(), 404);
    assert!(
        c.s3.objects("blobs").is_empty(),
        "{:?}",
        c.s3.objects("blobs")
    );

    // A v2 session: created and given its body on A, A dies, B completes it.
    c.a.restart();
    let upload_url = c.a.create_upload(KEY).await;
    let put_path = upload_url.split_once("/_upload/").unwrap().1.to_owned();
    let r = client()
        .put(format!("{}/_upload/{put_path}", c.a.url))
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.a.kill();
    let upload_key = put_path.split('/').next().unwrap();
    let r = client()
        .post(format!("{}/v1/uploads/{upload_key}:complete?key={KEY}", c.b.url))
        .body(format!(
            "{{\"symbol_id\": {{\"debug_file\": \"dying\", \"debug_id\": \"{id}\"}}, \"symbol_upload_type\": \"BREAKPAD\"}}"
        ))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("\"OK\""), "{body}");
    until_status(&c.b, &path, 200).await;
    assert_eq!(c.b.get(&path).await.text().await.unwrap(), text);
    assert!(
        c.s3.objects("uploads").is_empty(),
        "the session's body is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_connection_can_require_verified_tls() {
    let Some(s3) = S3::start() else { return };
    let Some(pg) = Pg::start_with(true) else {
        return;
    };
    let ca = pg._dir.path().join("ca.pem");
    let config = |url: String, ca: Option<&Path>| {
        let base = shared_config(&pg, &s3.endpoint(), "");
        let base = base.replace(&format!("\"{}\"", pg.url()), &format!("\"{url}\""));
        match ca {
            Some(ca) => base.replace(
                "[storage.s3]",
                &format!("database_ca_file = \"{}\"\n[storage.s3]", ca.display()),
            ),
            None => base,
        }
    };
    // Refused: no TLS asked for (the server takes TLS only), or a certificate not trusted.
    for (url, ca, why) in [
        (pg.url(), Some(ca.as_path()), "no encryption"),
        (format!("{}?sslmode=require", pg.url()), None, "certificate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symhub.toml");
        std::fs::write(&path, config(url, ca)).unwrap();
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .envs(CREDS_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {path:?}");
        eprintln!("refused as expected: {}", stderr.trim());
        assert!(
            stderr.contains("storage.database") && stderr.contains(why),
            "{stderr}"
        );
    }
    // Accepted: TLS with the server's CA.
    let s = Symhub::start_env(
        &config(format!("{}?sslmode=require", pg.url()), Some(&ca)),
        &CREDS_ENV,
    );
    let id = "C8C8C8C8C8C8C8C8C8C8C8C8C8C8C8C8A";
    let text = sym("secure", id);
    assert_eq!(upload_v1(&s, &text).await.status(), 200, "{}", s.stderr());
    assert_eq!(
        s.get(&format!("/secure/{id}/secure.sym"))
            .await
            .text()
            .await
            .unwrap(),
        text
    );
}
