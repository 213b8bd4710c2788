//! Storage outages: the bucket stopped, the bucket silent (accepting connections and
//! sending nothing), the database stopped. Reads fail fast with a 404 that is not
//! remembered, local copies are still served, writes answer 503, `/healthz` says degraded,
//! and everything heals without a restart.

use std::time::{Duration, Instant};

use super::{
    assert_degraded, assert_storage_unavailable, assert_unavailable, store_sym, sym, until_status,
    upload_v1, Cluster, Pipe, KEY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_outage_fails_fast_keeps_local_hits_and_heals() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let id = "11112222333344445555666677778888A";
    let text = sym("outage", id);
    let path = format!("/outage/{id}/outage.sym");
    assert_eq!(upload_v1(&c.a, &text).await.status(), 200);

    c.s3.stop();
    // A wrote the file and keeps a local copy: still served.
    let r = c.a.get(&path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), text);
    // B never had it.
    assert_unavailable(&c.b, &path, Duration::from_secs(8)).await;
    assert_degraded(&c.b, "bucket_ok").await;
    // Writes answer 503 with JSON.
    assert_storage_unavailable(
        upload_v1(&c.b, &sym("late", "99998888777766665555444433332222A")).await,
    )
    .await;

    // Storage returns: everything works again without a restart.
    c.s3.spawn();
    until_status(&c.b, &path, 200).await;
    assert_eq!(c.b.get(&path).await.text().await.unwrap(), text);
    let health = c.b.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
    let r = upload_v1(&c.b, &sym("late", "99998888777766665555444433332222A")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_bucket_fails_fast_keeps_local_copies_and_heals() {
    let Some(c) = Cluster::start() else { return };
    let (t1, p1) = store_sym(&c.a, "quiet", "5151515151515151515151515151515A").await;
    let (t2, p2) = store_sym(&c.a, "loud", "6262626262626262626262626262626B").await;
    let pipe = Pipe::start(c.s3.port, 1 << 30).await;
    let slow = c.another(&pipe.endpoint(), "timeout = \"1s\"\n");
    assert_eq!(slow.get(&p2).await.text().await.unwrap(), t2);

    // The bucket accepts connections and then says nothing.
    pipe.set_rate(0);
    assert_unavailable(&slow, &p1, Duration::from_secs(5)).await;
    // What this instance already has a copy of is still served.
    assert_eq!(slow.get_now(&p2).await.text().await.unwrap(), t2);
    assert_degraded(&slow, "bucket_ok").await;
    let start = Instant::now();
    assert_storage_unavailable(
        upload_v1(&slow, &sym("hush", "7373737373737373737373737373737C")).await,
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );

    // The bucket speaks again: no restart needed.
    pipe.set_rate(1 << 30);
    until_status(&slow, &p1, 200).await;
    assert_eq!(slow.get(&p1).await.text().await.unwrap(), t1);
    let health = slow.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_keeps_hits_and_heals() {
    let Some(c) = Cluster::start() else { return };
    let (t1, p1) = store_sym(&c.a, "seen", "8484848484848484848484848484848D").await;
    let (t2, p2) = store_sym(&c.a, "unseen", "9595959595959595959595959595959E").await;
    assert_eq!(c.b.get(&p1).await.text().await.unwrap(), t1);

    c.pg.stop();
    // What B has served stays served.
    assert_eq!(c.b.get_now(&p1).await.text().await.unwrap(), t1);
    // What it has not: a fast 404 that asks no upstream and is not remembered.
    assert_unavailable(&c.b, &p2, Duration::from_secs(5)).await;
    assert_degraded(&c.b, "database_ok").await;
    assert_storage_unavailable(
        upload_v1(&c.b, &sym("during", "A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6F")).await,
    )
    .await;

    c.pg.resume();
    until_status(&c.b, &p2, 200).await;
    assert_eq!(c.b.get(&p2).await.text().await.unwrap(), t2);
    let r = upload_v1(&c.b, &sym("during", "A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6A6F")).await;
    assert_eq!(r.status(), 200);
    let health = c.b.json(&format!("/healthz?key={KEY}")).await;
    assert_eq!(health["status"], "ok", "{health}");
}
