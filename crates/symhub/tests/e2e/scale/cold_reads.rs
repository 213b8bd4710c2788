//! Reading stored files an instance has no local copy of: streamed from a slow bucket as
//! they arrive (one download for concurrent clients, ranges, a damaged blob never served
//! whole or kept), the local copy then sent from the page cache, and store hits redirected
//! to presigned bucket URLs; a first read has the validators (ETag, 304, If-Range) of a
//! local copy.

use std::time::Duration;

use super::{put_package, store_sym, upload_v1, Cluster, Pipe, BUCKET};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_instance_streams_bucket_files_as_they_arrive_and_checks_them() {
    use futures_util::StreamExt;
    let Some(c) = Cluster::start() else { return };
    let key = "big.pdb/ABCDEF0123456789ABCDEF01234567891/big.pdb";
    let blob = data(6 << 20, 21);
    put_package(&c.a, "big", key, &blob).await;
    // A third instance whose bucket sends 2 MiB/s: the whole file takes 3 s to arrive.
    let pipe = Pipe::start(c.s3.port, 2 << 20).await;
    let mut cold = c.another(&pipe.endpoint(), "");
    let url = format!("{}/{key}", cold.url);

    // Two clients at once: one download from the bucket, and both get bytes long before it
    // has all arrived.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.content_length(), Some(blob.len() as u64));
    let other = tokio::spawn(client().get(&url).send());
    let mut body = r.bytes_stream();
    let mut got = Vec::new();
    while got.len() < 1 << 20 {
        got.extend_from_slice(&body.next().await.unwrap().unwrap());
    }
    let relayed = pipe.relayed();
    assert!(
        relayed < blob.len() as u64 / 2,
        "the first MiB reached the client only after {relayed} bytes came from the bucket"
    );
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == blob, "streamed bytes differ");
    let other = other.await.unwrap().unwrap().bytes().await.unwrap();
    assert!(other == blob, "the joining client's bytes differ");
    assert!(
        pipe.relayed() < blob.len() as u64 * 3 / 2,
        "one download for two clients, {} bytes relayed",
        pipe.relayed()
    );

    // Now a local copy: served while the bucket says nothing at all.
    // Over HTTP/1 its bytes go out with sendfile, as a data dir's do.
    pipe.set_rate(0);
    for copy in walk(&cold.data_dir.join("store/bucket-cache")) {
        into_page_cache(&copy);
    }
    let sent = "symhub_sendfile_bytes_total";
    let before = cold.metric(sent).await;
    let r = cold.get_now(&format!("/{key}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == blob);
    assert_sent_with_sendfile(cold.metric(sent).await - before, blob.len());

    // A range of a file still in the bucket (the local copies start empty at each start).
    pipe.set_rate(1 << 30);
    cold.restart();
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .header("range", "bytes=5000000-5000999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 5000000-5000999/{}", blob.len()).as_str()
    );
    assert!(r.bytes().await.unwrap() == blob[5_000_000..5_001_000]);

    // A blob damaged in the bucket (same length, one byte flipped) is never served whole:
    // the response is cut before its last byte and no local copy is kept.
    cold.restart();
    let stored =
        c.s3.objects("blobs")
            .into_iter()
            .find(|p| std::fs::metadata(p).unwrap().len() == blob.len() as u64)
            .expect("the blob in the bucket");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[3_000_000] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut n = 0;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => n += c.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut && n < blob.len(),
        "a damaged blob was served whole ({n} bytes)"
    );
    // A range of it is not sent whole either: its last byte waits for the check.
    cold.settle().await;
    let r = client()
        .get(format!("{}/{key}", cold.url))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.bytes().await.is_err(),
        "a range of a damaged blob was served whole"
    );
    cold.settle().await;
    let copies: Vec<_> = walk(&cold.data_dir.join("store/bucket-cache"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 0)
        .collect();
    assert!(copies.is_empty(), "kept {copies:?}");
    assert!(cold.stderr().contains("not served"), "{}", cold.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_hits_can_redirect_to_presigned_bucket_urls() {
    let Some(c) = Cluster::start() else { return };
    let key = "redir.pdb/0000000000000000000000000000ABCD1/redir.pdb";
    let blob = data(300_000, 5);
    put_package(&c.a, "redir", key, &blob).await;
    let r = c.another(&c.s3.endpoint(), "redirect = true\nredirect_ttl = \"2m\"\n");
    let resp = r.get(&format!("/{key}")).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/{BUCKET}/team/blobs/", c.s3.endpoint())),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    // The URL alone is enough: no credentials are sent (dotnet-symbol drops them).
    let fetched = client().get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(fetched.bytes().await.unwrap() == blob);
    // And it is really signed: a changed signature is refused by the bucket.
    let (head, sig) = location.split_once("X-Amz-Signature=").unwrap();
    let forged = format!("{head}X-Amz-Signature={}", sig.replace(['a', 'b'], "c"));
    assert_eq!(client().get(&forged).send().await.unwrap().status(), 403);
    // Proxy-cache misses and unknown keys are not redirected.
    let r2 = r
        .get("/nothing.pdb/0000000000000000000000000000DEAD1/nothing.pdb")
        .await;
    assert_eq!(r2.status(), 404);
}

/// A stored file an instance reads from the bucket for the first time has the validators of
/// its local copy: the `ETag` (its SHA-256) and `Last-Modified` at once, a 304 for a client
/// that has it, and `If-Range` honoured. Behind a load balancer a conditional request gets
/// the same answer from every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_read_from_the_bucket_has_the_validators_of_a_local_copy() {
    use sha2::Digest;
    let Some(c) = Cluster::start() else { return };
    let (blob, other) = (data(3 << 20, 31), data(3 << 20, 32));
    let keys = [
        "val.pdb/0123456789ABCDEF0123456789ABCDEF1/val.pdb",
        "val.pdb/0123456789ABCDEF0123456789ABCDEF2/val.pdb",
        "val.pdb/0123456789ABCDEF0123456789ABCDEF3/val.pdb",
    ];
    for (i, key) in keys.iter().enumerate() {
        put_package(
            &c.a,
            &format!("val{i}"),
            key,
            if i == 1 { &other } else { &blob },
        )
        .await;
    }
    let etag = |b: &[u8]| format!("\"{}\"", &hex::encode(sha2::Sha256::digest(b))[..32]);
    // B has no copy of any of them. A HEAD: validators at once.
    let r = client()
        .head(format!("{}/{}", c.b.url, keys[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], etag(&blob).as_str());
    assert!(
        r.headers().contains_key("last-modified"),
        "{:?}",
        r.headers()
    );
    // A client that has the file: 304, no body.
    let r = client()
        .get(format!("{}/{}", c.b.url, keys[1]))
        .header("if-none-match", etag(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag(&other).as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    // If-Range with the file's validator: the part; with another: the whole file.
    let url = format!("{}/{}", c.b.url, keys[2]);
    let r = client()
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", etag(&blob))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), blob[10..20]);
    let r = client()
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", etag(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_replaced_between_its_row_and_its_bytes_is_looked_up_again() {
    let Some(c) = Cluster::start() else { return };
    let id = "5E7A1D89E79D021896EB8F060CBFF0A10";
    let (first, path) = store_sym(&c.a, "swap", id).await;
    let pipe = Pipe::start(c.s3.port, 1 << 30).await;
    let cold = c.another(&pipe.endpoint(), "");
    // The cold instance reads the key's row; its request for the bytes waits in the pipe
    // while the key is replaced on A, which deletes the first blob from the bucket.
    pipe.hold_requests(true);
    let before = pipe.requested();
    let read = tokio::spawn(client().get(format!("{}{path}", cold.url)).send());
    let start = std::time::Instant::now();
    while pipe.requested() == before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no bucket request"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = format!("{first}PUBLIC 2000 0 replaced\n");
    assert_eq!(upload_v1(&c.a, &second).await.status(), 200);
    assert_eq!(c.s3.objects("blobs").len(), 1, "the first blob is gone");
    pipe.hold_requests(false);
    let r = read.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "{}", cold.stderr());
    assert_eq!(r.text().await.unwrap(), second);
}
