//! The missing-symbol ledger on a shared database: misses counted by either instance add up
//! in one ledger, and a miss forgotten through one is gone for both.

use super::{Cluster, KEY};
use crate::support::*;

async fn ledger(s: &Symhub) -> serde_json::Value {
    let r = client()
        .get(format!("{}/api/missing", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", s.stderr());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn both_instances_count_into_one_ledger() {
    let Some(c) = Cluster::start() else { return };
    let path = "/shared.pdb/0123456789ABCDEF0123456789ABCDEF1/shared.pdb";
    for s in [&c.a, &c.b, &c.b] {
        assert_eq!(s.get(path).await.status(), 404);
    }
    // B's counts are written by its flush; A's listing flushes only A's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let v = ledger(&c.a).await;
        if v["missing"][0]["count"] == 3 {
            assert_eq!(v["total"], 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = client()
        .delete(format!("{}/api/missing{path}", c.b.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ledger(&c.a).await["total"], 0);
}
