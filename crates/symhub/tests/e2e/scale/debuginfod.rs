//! debuginfod on a shared store: ELF files uploaded through one instance are found by build
//! id through the other (the build-id index lives in the shared database, the bytes in the
//! bucket), sections included.

use super::{until_status, Cluster, KEY};
use crate::debuginfod::upload_native_with;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elf_files_uploaded_on_one_instance_are_served_by_build_id_on_the_other() {
    let Some(c) = Cluster::start() else { return };
    // The committed fixture and the build id `eu-readelf -n` gives for it.
    let dir = fixtures().join("elf");
    let id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    upload_native_with(&c.a, KEY, &dir.join("hello"), "hello", id, "ELF").await;
    upload_native_with(
        &c.a,
        KEY,
        &dir.join("hello.debug"),
        "hello.debug",
        id,
        "DEBUG_ONLY",
    )
    .await;
    let exe = std::fs::read(dir.join("hello")).unwrap();
    let debug = std::fs::read(dir.join("hello.debug")).unwrap();
    let text = symhub_core::elf::ElfFile::parse(&exe)
        .unwrap()
        .section(".text")
        .unwrap()
        .to_vec();
    for (path, want) in [
        (format!("/buildid/{id}/executable"), exe.clone()),
        (format!("/buildid/{id}/debuginfo"), debug.clone()),
        // `.text` is NOBITS in the debug file: it comes from the executable.
        (format!("/buildid/{id}/section/.text"), text),
    ] {
        let r = c.b.get(&path).await;
        assert_eq!(r.status(), 200, "{path}: {}", c.b.stderr());
        assert!(r.bytes().await.unwrap() == want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elf_binary_in_a_package_added_on_one_instance_is_served_by_build_id_on_the_other() {
    let Some(c) = Cluster::start() else { return };
    let id = crate::packages_elf::HELLO_ID;
    let path = format!("/buildid/{id}/executable");
    // A miss remembered by the other instance must not outlive the package.
    assert_eq!(c.b.get(&path).await.status(), 404);
    let r = client()
        .put(format!("{}/api/packages/hello-1", c.a.url))
        .bearer_auth(KEY)
        .body(crate::packages_elf::hello_package())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let exe = std::fs::read(fixtures().join("elf/hello")).unwrap();
    until_status(&c.b, &path, 200).await;
    let r = c.b.get(&path).await;
    assert_eq!(r.status(), 200, "{}", c.b.stderr());
    assert!(r.bytes().await.unwrap() == exe);
}
