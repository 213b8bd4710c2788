//! Native debug files on a shared store (`PUT /api/files`): a PDB uploaded through one
//! instance and its EXE through the other, each with its own data directory, so the second
//! finds the PDB only in the bucket (through the module index in PostgreSQL) and pairs them
//! into one Breakpad `.sym`; both instances serve every key byte for byte, and a transaction
//! opened on one and deleted on the other takes the keys away from both. A Linux binary and
//! its split debug file the same way, served by build id (debuginfod).
//!
//! The files are built here (`native_support`: clang-cl/lld-link, gcc), and the keys they
//! must be stored under come from LLVM's and elfutils' tools, not from symhub.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method as M;
use serde_json::Value;

use super::{until_status, Cluster, KEY};
use crate::native_support::*;
use crate::support::*;
use crate::transactions::{api, open};

/// `PUT /api/files/<name>` of `bytes` through `s`: the report.
async fn put_file(s: &Symhub, name: &str, bytes: Vec<u8>, tx: i64) -> Value {
    let r = client()
        .put(format!("{}/api/files/{name}?transaction={tx}", s.url))
        .bearer_auth(KEY)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{name}: {text}\n{}", s.stderr());
    serde_json::from_str(&text).unwrap()
}

/// GET `path` on `s` until `ok` holds for its 200 body (another instance's write is seen
/// within the change poll); the body.
async fn until_body(s: &Symhub, path: &str, ok: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let start = Instant::now();
    loop {
        let r = s.get(path).await;
        let status = r.status();
        let body = r.bytes().await.unwrap().to_vec();
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path}: {status} {}\n{}",
            String::from_utf8_lossy(&body[..body.len().min(400)]),
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `s`'s data directory holds a file named after blob `sha256` (a local copy).
fn holds_blob(s: &Symhub, sha256: &str) -> bool {
    s.files()
        .iter()
        .any(|p| p.to_string_lossy().contains(sha256))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_on_one_instance_and_its_exe_on_the_other_make_one_sym() {
    if !native_tools() {
        return;
    }
    let Some(c) = Cluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (build, pe, (guid, age)) = tokio::task::spawn_blocking(move || {
        let build = build_windows_program(&root);
        let pe = readobj_pe(&build.exe);
        let pdb = pdbutil_guid_age(&build.pdb);
        (build, pe, pdb)
    })
    .await
    .unwrap();
    let pe_key = expected_pe_key("crash.exe", &pe);
    let pdb_key = expected_pdb_key("crash.pdb", &guid, age);
    let id = format!("{guid}{age:X}");
    let sym_key = format!("crash.pdb/{id}/crash.sym");
    let code_id = format!("{:08X}{:x}", pe.timestamp, pe.size_of_image);
    let (exe, pdb) = (read(&build.exe), read(&build.pdb));

    let tx = open(&c.a, KEY, "crash", "1.0").await;
    let report = put_file(&c.a, "crash.pdb", pdb.clone(), tx).await;
    assert_eq!(report["objects"][0]["keys"][0], pdb_key, "{report}");
    let pdb_sha = report["sha256"].as_str().unwrap().to_owned();
    // B never saw the PDB: its only way to it is the bucket.
    assert!(holds_blob(&c.a, &pdb_sha), "A keeps a local copy");
    assert!(!holds_blob(&c.b, &pdb_sha), "B has no copy of the PDB");
    let report = put_file(&c.b, "crash.exe", exe.clone(), tx).await;
    assert_eq!(report["objects"][0]["keys"][0], pe_key, "{report}");
    assert_eq!(report["breakpad"][0]["key"], sym_key, "{report}");
    assert_eq!(report["breakpad"][0]["result"], "stored", "{report}");

    let code_line = format!("INFO CODE_ID {code_id} crash.exe");
    let paired = |b: &[u8]| String::from_utf8_lossy(b).lines().any(|l| l == code_line);
    for s in [&c.a, &c.b] {
        for (key, want) in [(&pdb_key, &pdb), (&pe_key, &exe)] {
            let r = s.get(&format!("/{key}")).await;
            assert_eq!(r.status(), 200, "{key}: {}", s.stderr());
            assert!(r.bytes().await.unwrap() == want[..], "{key} byte for byte");
        }
        // A made a `.sym` from the PDB alone first; B's, with the EXE, replaced it.
        let sym = until_body(s, &format!("/{sym_key}"), paired).await;
        let sym = String::from_utf8(sym).unwrap();
        let module = format!("MODULE windows x86_64 {id} crash.pdb");
        assert_eq!(sym.lines().next(), Some(module.as_str()), "{sym}");
        assert!(sym.contains("FUNC "), "functions from the PDB");
    }

    let (status, v) = api(&c.b, KEY, M::GET, &format!("/api/transactions/{tx}"), None).await;
    assert_eq!(status, 200, "{v}");
    let mut keys: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_ascii_lowercase())
        .collect();
    keys.sort();
    let mut want = [&pdb_key, &pe_key, &sym_key].map(|k| k.to_ascii_lowercase());
    want.sort();
    assert_eq!(keys, want, "{v}");

    let (status, v) = api(
        &c.b,
        KEY,
        M::DELETE,
        &format!("/api/transactions/{tx}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"][0]["keys_removed"], 3, "{v}");
    for key in [&pdb_key, &pe_key, &sym_key] {
        until_status(&c.a, &format!("/{key}"), 404).await;
        assert_eq!(c.b.get(&format!("/{key}")).await.status(), 404, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripped_binary_on_one_instance_and_its_debug_file_on_the_other() {
    if !native_tools() {
        return;
    }
    let Some(c) = Cluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let build = tokio::task::spawn_blocking(move || build_linux_program(&root))
        .await
        .unwrap();
    let id = &build.build_id;
    let (stripped, debug) = (read(&build.stripped), read(&build.debug_file));

    let tx = open(&c.a, KEY, "waiter", "1.0").await;
    let report = put_file(&c.a, "waiter", stripped.clone(), tx).await;
    assert_eq!(
        report["objects"][0]["keys"][0],
        format!("waiter/elf-buildid-{id}/waiter"),
        "{report}"
    );
    let binary_sha = report["sha256"].as_str().unwrap().to_owned();
    assert!(
        !holds_blob(&c.b, &binary_sha),
        "B has no copy of the binary"
    );
    let report = put_file(&c.b, "waiter.debug", debug.clone(), tx).await;
    assert_eq!(
        report["objects"][0]["keys"][0],
        format!("_.debug/elf-buildid-sym-{id}/_.debug"),
        "{report}"
    );
    // The `.sym` B made from the debug file and A's binary (found in the bucket only).
    let sym_key = report["breakpad"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(report["breakpad"][0]["result"], "stored", "{report}");
    for s in [&c.a, &c.b] {
        for (path, want) in [
            (format!("/buildid/{id}/executable"), &stripped),
            (format!("/buildid/{id}/debuginfo"), &debug),
        ] {
            let r = s.get(&path).await;
            assert_eq!(r.status(), 200, "{path}: {}", s.stderr());
            assert!(r.bytes().await.unwrap() == want[..], "{path} byte for byte");
        }
        let sym = until_body(s, &format!("/{sym_key}"), |_| true).await;
        let sym = String::from_utf8(sym).unwrap();
        assert!(sym.starts_with("MODULE Linux x86_64 "), "{sym}");
        let code_line = format!("INFO CODE_ID {id}");
        assert!(
            sym.lines().any(|l| l.eq_ignore_ascii_case(&code_line)),
            "{sym}"
        );
        // `objcopy --only-keep-debug` leaves `.eh_frame` as NOBITS: unwind rules come from
        // the binary only, so B paired the debug file with A's upload.
        assert!(sym.contains("\nSTACK CFI INIT "), "{sym}");
    }
}
