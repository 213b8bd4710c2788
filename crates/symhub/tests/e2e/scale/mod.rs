//! Scale-out: two symhub instances on one S3-compatible bucket (a real s3s-fs server, which
//! checks request signatures) and one PostgreSQL (a throwaway cluster per test). Uploads,
//! packages and upload sessions cross instances; a bucket outage fails fast and heals.
//! `scripts/test` installs s3s-fs and PostgreSQL and sets SYMHUB_REQUIRE_TOOLS=1, so these
//! tests cannot silently skip there.
//!
//! This module holds the rig (`Cluster`: two instances on a bucket and a database) and
//! the helpers the tests share; the tests are grouped by what they check.

mod access;
mod bucket;
mod database;

mod cold_reads;
mod consistency;
mod crashes;
mod database_tls;
mod debuginfod;
mod migrate;
mod missing;
mod native;
mod outages;
mod symbolication;
mod transactions;

use std::time::{Duration, Instant};

use crate::packages::{index, make_zip};
use crate::support::*;

use bucket::{Pipe, S3};
use database::Pg;

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
