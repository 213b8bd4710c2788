//! Test support: the real `symhub` binary on a loopback port (or UNIX socket), and fake
//! upstreams that are real HTTP servers able to delay, drip, cut, redirect, answer any
//! status, and count what they were asked.

#![allow(dead_code)]

mod raw;
mod symhub;
mod upstream;

pub use self::raw::*;
pub use self::symhub::*;
pub use self::upstream::*;

use std::path::{Path, PathBuf};

use bytes::Bytes;

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A config with the given upstreams, in order: `(name, url, extra TOML lines)`.
pub fn config_with(upstreams: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = String::from(extra);
    s.push('\n');
    for (name, url, more) in upstreams {
        s.push_str(&format!(
            "[[upstream]]\nname = \"{name}\"\nurl = \"{url}\"\n{more}\n"
        ));
    }
    s
}

/// Checks `sent`, what `symhub_sendfile_bytes_total` grew by, against the `expected` bytes of
/// HTTP/1 hits. They all go out with `sendfile` while their pages stay in the page cache, but
/// pages the kernel reclaims meanwhile (a busy CI runner near its memory limit) are read and
/// copied instead, by design: so at least half of them, and never more than all.
pub fn assert_sent_with_sendfile(sent: f64, expected: usize) {
    let expected = expected as f64;
    assert!(
        sent >= expected / 2.0 && sent <= expected,
        "{sent} bytes went out with sendfile, of {expected}"
    );
}

/// Reads `path` whole and drops the bytes, so that its pages are in the page cache.
pub fn into_page_cache(path: &Path) {
    std::io::copy(
        &mut std::fs::File::open(path).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
}

/// Deterministic pseudo-random bytes (no two tests share content by accident).
pub fn data(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// `[auth]` with one key, and the key.
pub fn auth_config(key: &str) -> String {
    use sha2::Digest;
    format!(
        "[auth]\napi_keys = [\"sha256:{}\"]\n",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// Real symbol files and minidumps kept in the repo (`tests/fixtures`, with their licences),
/// so a clone anywhere tests on its own.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A SymSrv CAB (`foo.pd_`): one file, MSZIP-compressed.
pub fn make_cab(name: &str, content: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut builder = cab::CabinetBuilder::new();
    builder
        .add_folder(cab::CompressionType::MsZip)
        .add_file(name);
    let mut writer = builder.build(std::io::Cursor::new(Vec::new())).unwrap();
    while let Some(mut w) = writer.next_file().unwrap() {
        w.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The real Breakpad consumer, if installed (`scripts/test` installs it and sets
/// SYMHUB_REQUIRE_TOOLS=1, so a missing tool fails instead of skipping).
pub fn minidump_stackwalk() -> Option<String> {
    let tool = std::env::var("MINIDUMP_STACKWALK").unwrap_or_else(|_| "minidump-stackwalk".into());
    if std::process::Command::new(&tool)
        .arg("--version")
        .output()
        .is_ok()
    {
        return Some(tool);
    }
    assert!(
        std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
        "minidump-stackwalk is not installed; scripts/test installs it"
    );
    eprintln!("SKIPPED: minidump-stackwalk not installed (run ./scripts/test)");
    None
}

/// `minidump-stackwalk` on the fixture `minidump2.dmp` with symbols from `symbols_url`.
pub async fn stackwalk(tool: &str, symbols_url: &str) -> String {
    let dump = fixtures().join("breakpad/minidumps/minidump2.dmp");
    stackwalk_dump(tool, symbols_url, &dump, &[]).await
}

/// `minidump-stackwalk [args] DUMP` with symbols from `symbols_url` and a fresh symbol
/// cache: its standard output (the test fails if it fails).
pub async fn stackwalk_dump(tool: &str, symbols_url: &str, dump: &Path, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (tool, url, dump) = (tool.to_owned(), symbols_url.to_owned(), dump.to_owned());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tool)
            .args(&args)
            .arg("--symbols-url")
            .arg(&url)
            .arg("--symbols-cache")
            .arg(dir.path().join("cache"))
            .arg("--symbols-tmp")
            .arg(dir.path().join("tmp"))
            .arg(dump)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `symhub upload --url URL --key KEY DIR`, which must succeed.
pub async fn upload_dir(url: &str, key: &str, dir: PathBuf) {
    upload_dir_with(url, key, dir, &[]).await
}

/// [`upload_dir`] with more flags (`--product`, `--expires`…).
pub async fn upload_dir_with(url: &str, key: &str, dir: PathBuf, flags: &[&str]) {
    let (url, key) = (url.to_owned(), key.to_owned());
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(["upload", "--url", &url, "--key", &key])
            .args(&flags)
            .arg(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
