//! Native build output in (issue 14): real programs built in the test (a Windows PE + PDB with
//! clang-cl/lld-link, a Linux program with gcc and its split debug file), the keys symhub
//! derives compared with what LLVM's and elfutils' tools say, the files served byte-identical
//! under every key, the Breakpad symbols made from them walked by minidump-stackwalk, and
//! what is refused. `native_support` builds the programs; this module holds what the tests
//! share: running `symhub upload` and reading a key back.

mod lifecycle;
mod linux;
mod macho;
mod packages;
mod refusals;
mod windows;

use std::path::Path;

use crate::support::*;

const KEY: &str = "NATIVEKEY";

/// A server with an upload key and no upstreams.
fn server() -> Symhub {
    Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)))
}

/// `symhub upload --url <server> --key <key> <args…> <paths…>`: success and stdout (stderr
/// is appended to stdout for failure messages).
async fn upload(s: &Symhub, args: &[&str], paths: &[&Path]) -> (bool, String) {
    let mut command = std::process::Command::new(bin());
    command
        .args(["upload", "--url", &s.url, "--key", KEY])
        .args(args)
        .args(paths);
    run(command).await
}

async fn run(mut command: std::process::Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Status and body of `GET /<key>`.
async fn fetch(s: &Symhub, key: &str) -> (u16, Vec<u8>) {
    let resp = s.get(&format!("/{key}")).await;
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// Asserts `key` serves exactly the bytes of `file`.
async fn assert_served(s: &Symhub, key: &str, file: &Path) {
    let (status, body) = fetch(s, key).await;
    assert_eq!(status, 200, "GET /{key}");
    assert!(
        body == std::fs::read(file).unwrap(),
        "GET /{key} is not {}",
        file.display()
    );
}

/// `PUT /api/files/<name>` of raw bytes: status and JSON answer.
async fn put_file(s: &Symhub, name: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = client()
        .put(format!("{}/api/files/{name}", s.url))
        .bearer_auth(KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let json = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or_default();
    (status, json)
}

/// The rig's Windows build in a new temp dir (kept alive by the caller), or `None` when the
/// tools are missing and the test is skipped.
async fn windows_build() -> Option<(tempfile::TempDir, crate::native_support::WindowsBuild)> {
    if !crate::native_support::native_tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let win =
        tokio::task::spawn_blocking(move || crate::native_support::build_windows_program(&root))
            .await
            .unwrap();
    Some((dir, win))
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_owned()
}
