//! Symbolication on a shared store: symbols uploaded through one instance symbolicate
//! minidumps and `/symbolicate/v5` jobs on the other, and a PDB and its PE stored (without
//! their `.sym`) through a third are converted on demand, together, by an instance that has
//! them only in the bucket.

use serde_json::json;

use super::{shared_config, Cluster, CREDS_ENV, KEY};
use crate::support::*;
use crate::symbolication::{frames, walk_dump as walk, PDBS};

#[tokio::test]
async fn symbols_uploaded_through_one_instance_symbolicate_on_the_other() {
    let Some(c) = Cluster::start() else { return };
    upload_dir(&c.a.url, KEY, fixtures().join("breakpad/symbols")).await;
    let dump = std::fs::read(fixtures().join("breakpad/minidumps/minidump2.dmp")).unwrap();
    let (on_a, on_b) = (walk(&c.a, &dump).await, walk(&c.b, &dump).await);
    assert_eq!(frames(&on_b), frames(&on_a));
    assert_eq!(
        frames(&on_b)[0][0][1],
        "`anonymous namespace'::CrashFunction"
    );
    let job = json!({"jobs": [{"memoryMap": [["test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1"]],
                               "stacks": [[[0, 0x41fd]]]}]});
    let r = client()
        .post(format!("{}/symbolicate/v5", c.b.url))
        .body(job.to_string())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["results"][0]["stacks"][0][0]["function"], "main", "{v}");
    assert_eq!(v["results"][0]["stacks"][0][0]["line"], 65);
}

#[tokio::test]
async fn a_pdb_only_in_the_bucket_is_converted_on_demand() {
    let Some(c) = Cluster::start() else { return };
    // A third instance that stores PDBs without making their .sym at upload.
    let uploader = Symhub::start_env(
        &format!(
            "{}\n[upload]\nbreakpad = false\n",
            shared_config(&c.pg, &c.s3.endpoint(), "")
        ),
        &CREDS_ENV,
    );
    let (name, id) = PDBS[1];
    let pdb = std::fs::read(fixtures().join(format!("windows/{name}.pdb"))).unwrap();
    let r = client()
        .put(format!("{}/api/files/{name}.pdb", uploader.url))
        .bearer_auth(KEY)
        .body(pdb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", uploader.stderr());
    // Its PE too: the module index in PostgreSQL pairs them for the conversion (CFI, code id).
    let exe = std::fs::read(fixtures().join(format!("windows/{name}.exe"))).unwrap();
    let r = client()
        .put(format!("{}/api/files/{name}.exe", uploader.url))
        .bearer_auth(KEY)
        .body(exe)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", uploader.stderr());
    let sym = format!("/{name}.pdb/{id}/{name}.sym");
    // B never saw the PDB: it reads it from the bucket (after the store change reaches it).
    let start = std::time::Instant::now();
    let made = loop {
        let r = c.b.get(&sym).await;
        if r.status() == 200 {
            assert!(r.headers()["x-symhub-upstream"]
                .to_str()
                .unwrap()
                .starts_with("derived:"));
            break r.text().await.unwrap();
        }
        assert!(start.elapsed().as_secs() < 10, "{}", c.b.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let want = std::fs::read_to_string(fixtures().join(format!("windows/{name}.sym"))).unwrap();
    assert_eq!(made.lines().next(), want.lines().next());
    assert_eq!(
        made.lines().nth(1),
        want.lines().nth(1),
        "INFO CODE_ID from the stored PE"
    );
    assert!(made.contains("STACK CFI INIT"));
    assert!(made.lines().filter(|l| l.starts_with("FUNC")).count() > 100);
    assert!(c.b.stderr().contains("made a .sym on demand"));
}

/// A module parsed on one instance is parsed again there once the other replaces its
/// `.sym`, and dropped once the other deletes it (the change reaches it through the database).
#[tokio::test]
async fn symbols_replaced_or_deleted_through_one_instance_are_not_used_by_the_other() {
    let Some(c) = Cluster::start() else { return };
    crate::symbolication::replaced::replaced_and_deleted_symbols_are_not_used(
        &c.a,
        KEY,
        &c.b,
        std::time::Duration::from_secs(10),
    )
    .await;
}
