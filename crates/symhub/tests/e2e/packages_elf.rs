//! ELF files in SSQP packages through debuginfod: the binary's SSQP key names it by file
//! name (`hello/elf-buildid-<id>/hello`), which `buildid/<id>/executable` lacks, so the
//! package must make it findable by build id, as an upload's build-id index does.

use crate::debuginfod::blocking;
use crate::elf_support::*;
use crate::packages::{index, make_zip};
use crate::support::*;

const KEY: &str = "pkg-elf-key";

/// The committed fixture and the build id `eu-readelf -n` gives for it.
pub(crate) const HELLO_ID: &str = "fb89faed92941c861f194450d2f07cf0b1d2caec";

/// A package of the fixture's stripped binary and its debug file under their SSQP keys.
pub(crate) fn hello_package() -> Vec<u8> {
    let dir = fixtures().join("elf");
    let exe = std::fs::read(dir.join("hello")).unwrap();
    let debug = std::fs::read(dir.join("hello.debug")).unwrap();
    let exe_key = format!("hello/elf-buildid-{HELLO_ID}/hello");
    let debug_key = format!("_.debug/elf-buildid-sym-{HELLO_ID}/_.debug");
    make_zip(&[
        (
            "symbol_index.json",
            &index(&[(&exe_key, "bin/hello"), (&debug_key, "dbg/hello.debug")]),
        ),
        ("bin/hello", &exe),
        ("dbg/hello.debug", &debug),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elf_binary_in_a_package_is_served_by_build_id_to_debuginfod_clients() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let exe_path = format!("/buildid/{HELLO_ID}/executable");
    // Asked before the package exists: the miss must not outlive the package's arrival.
    assert_eq!(s.get(&exe_path).await.status(), 404);

    let r = client()
        .put(format!("{}/api/packages/hello-1", s.url))
        .bearer_auth(KEY)
        .body(hello_package())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["derived_keys"], 1, "the binary's build-id spelling: {v}");

    let dir = fixtures().join("elf");
    let exe = std::fs::read(dir.join("hello")).unwrap();
    let r = s.get(&exe_path).await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert!(r.bytes().await.unwrap() == exe, "executable byte-identical");
    // The uppercase id is the same build id.
    let upper = format!("/buildid/{}/executable", HELLO_ID.to_uppercase());
    assert_eq!(s.get(&upper).await.status(), 200);

    // The real client, for the binary and for a section only the binary has.
    if elfutils_tools() {
        let url = s.url.clone();
        let found = blocking(move || {
            [
                debuginfod_find(&[&url], &["executable", HELLO_ID]),
                debuginfod_find(&[&url], &["section", HELLO_ID, ".text"]),
            ]
        });
        assert!(found[0].bytes() == exe, "{}", found[0].describe());
        let text = symhub_core::elf::ElfFile::parse(&exe)
            .unwrap()
            .section(".text")
            .unwrap()
            .to_vec();
        assert!(found[1].bytes() == text, "{}", found[1].describe());
    }

    // Removing the package takes the build-id spelling with it.
    let r = client()
        .delete(format!("{}/api/packages/hello-1", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(s.get(&exe_path).await.status(), 404);
}
