//! An instance killed mid-write: a package ingest is all or nothing for the other
//! instances, a v1 upload whose body was still arriving leaves nothing behind, and a v2
//! session it held is completed by another instance.

use std::time::Duration;

use super::{sym, until_status, Cluster, KEY};
use crate::packages::{index, make_zip};
use crate::support::*;

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
