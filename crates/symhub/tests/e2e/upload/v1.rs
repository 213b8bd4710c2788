//! sym-upload-v1 multipart POSTs, checked against the MODULE line, and the size limit on
//! uploads (v1 and a chunked v2 PUT) that never fills the disk.

use super::{multipart, post_v1, HELLO, HELLO_ID, KEY, V1_FIELDS};
use crate::support::*;

#[tokio::test]
async fn sym_upload_v1_multipart() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", ct.clone())
        .header("user-agent", "Breakpad/1.0 (Linux)")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.get(&format!("/hello/{HELLO_ID}/hello.sym")).await;
    assert_eq!(r.text().await.unwrap(), HELLO);

    // The fields are checked against the MODULE line the same way.
    let mut wrong = V1_FIELDS.to_vec();
    wrong[2] = ("debug_file", "other");
    let (ct, body) = multipart(&wrong, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 422);
    assert_eq!(s.get("/other/x/other.sym").await.status(), 404);
}

#[tokio::test]
async fn oversize_uploads_are_refused_without_filling_the_disk() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[upload]\nmax_size = \"1 KiB\"\n",
        auth_config(KEY)
    ));
    let big = format!("{HELLO}{}", "PUBLIC 1 0 x\n".repeat(1000));
    // v1, no Content-Length check possible inside the part: cut while streaming.
    let (ct, body) = multipart(V1_FIELDS, big.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 413);
    // v2 PUT, chunked (no Content-Length).
    let upload_url = s.create_upload(KEY).await;
    let stream = futures_util::stream::iter(
        big.clone()
            .into_bytes()
            .chunks(500)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = client()
        .put(&upload_url)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The server may answer before it has read the whole body, or cut it.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // The refused body's temp file goes when the request's task ends, which may be just
    // after the answer (on a loaded machine, a few milliseconds later).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !walk(&s.data_dir.join("store/tmp")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a refused upload left a temp file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(walk(&s.data_dir.join("store/objects")).is_empty());
    assert!(walk(&s.data_dir.join("store/uploads")).is_empty());
}
