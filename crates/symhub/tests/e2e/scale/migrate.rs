//! `symhub migrate`: a single node's data dir (uploads and packages) copied into the shared
//! bucket and database, served by every instance, and a second run copying nothing.

use std::path::PathBuf;
use std::process::Command;

use super::{sym, until_status, upload_v1, Cluster, KEY};
use crate::packages::{index, make_zip};
use crate::support::*;

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
