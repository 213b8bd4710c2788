//! The missing-symbol ledger (`GET /api/missing`, `DELETE /api/missing/<key>`).

use std::time::Duration;

use crate::support::*;

const KEY: &str = "ledger-key";

async fn ledger(s: &Symhub, query: &str) -> serde_json::Value {
    let r = client()
        .get(format!("{}/api/missing{query}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// `key` is not in the ledger, read twice (a miss counted just before its key was stored
/// is written by the next flush).
async fn assert_not_listed(s: &Symhub, key: &str) {
    for _ in 0..2 {
        let v = ledger(s, "").await;
        let listed = v["missing"].as_array().unwrap();
        let key = key.trim_start_matches('/');
        assert!(listed.iter().all(|m| m["key"] != key), "{v}");
    }
}

async fn get_as(s: &Symhub, path: &str, user_agent: &str) -> u16 {
    client()
        .get(format!("{}{path}", s.url))
        .header("user-agent", user_agent)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn misses_are_counted_with_what_upstreams_answered_and_who_asked() {
    let (ok, broken) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let a = "/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.pdb";
    let b = "/b.pdb/0123456789ABCDEF0123456789ABCDEF1/b.pdb";
    let flaky = "/flaky.pdb/0123456789ABCDEF0123456789ABCDEF1/flaky.pdb";
    broken.route(flaky, Behavior::Status(503));
    let found = "/here.pdb/0123456789ABCDEF0123456789ABCDEF1/here.pdb";
    ok.serve(found, data(100, 1));
    let s = Symhub::start(&config_with(
        &[("ok", &ok.url, ""), ("broken", &broken.url, "")],
        &auth_config(KEY),
    ));
    assert_eq!(get_as(&s, a, "Microsoft-Symbol-Server/10.0.0.0").await, 404);
    // Remembered misses count too: they are requests that found nothing.
    assert_eq!(get_as(&s, a, "curl/7.88.1").await, 404);
    assert_eq!(
        get_as(&s, &a.to_lowercase(), "dotnet-symbol/1.0").await,
        404
    );
    assert_eq!(get_as(&s, b, "curl/7.88.1").await, 404);
    assert_eq!(get_as(&s, flaky, "curl/7.88.1").await, 404);
    assert_eq!(get_as(&s, found, "curl/7.88.1").await, 200);
    let v = ledger(&s, "").await;
    assert_eq!(v["total"], 3, "{v}");
    let first = &v["missing"][0];
    assert_eq!(first["key"], a.trim_start_matches('/'), "{v}");
    assert_eq!(first["count"], 3);
    assert_eq!(first["answers"], "not found upstream");
    assert_eq!(
        first["clients"],
        serde_json::json!(["symsrv", "dotnet", "curl"])
    );
    assert!(first["first_seen"].as_str().unwrap() <= first["last_seen"].as_str().unwrap());
    let flaky_row = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == flaky.trim_start_matches('/'))
        .unwrap();
    assert_eq!(flaky_row["answers"], "broken: status 503");
    // Most recent first.
    let recent = ledger(&s, "?order=recent&limit=1").await;
    assert_eq!(recent["missing"][0]["key"], flaky.trim_start_matches('/'));
    assert_eq!(recent["missing"].as_array().unwrap().len(), 1);
    // Forget a miss: gone from the ledger, and the next request asks upstreams again, for
    // the CAB form (`a.pd_`, looked up after the plain name was missing) too.
    let a_cab = format!("{}_", &a[..a.len() - 1]);
    let (asked, asked_cab) = (ok.hits(a), ok.hits(&a_cab));
    assert!(asked_cab >= 1, "the CAB form was asked for: {a_cab}");
    let r = client()
        .delete(format!("{}/api/missing{a}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get_as(&s, a, "curl/7.88.1").await, 404);
    assert_eq!(ok.hits(a), asked + 1, "asked upstream again");
    assert_eq!(ok.hits(&a_cab), asked_cab + 1, "its CAB form too");
    // Forgotten right after it was counted, before the ledger's next write: gone as well.
    let c = "/c.pdb/0123456789ABCDEF0123456789ABCDEF1/c.pdb";
    assert_eq!(get_as(&s, c, "curl/7.88.1").await, 404);
    let r = client()
        .delete(format!("{}/api/missing{c}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let forgotten: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(forgotten["forgotten"], true, "{forgotten}");
    let v = ledger(&s, "").await;
    let listed = v["missing"].as_array().unwrap().iter();
    assert!(
        listed
            .clone()
            .all(|m| m["key"] != c.trim_start_matches('/')),
        "{v}"
    );
    let v = ledger(&s, "").await;
    let row = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == a.trim_start_matches('/'))
        .cloned();
    assert_eq!(row.unwrap()["count"], 1, "counted afresh");
    // Uploaded since: no longer missing, though its miss was counted just before.
    let id = "2123456789ABCDEF0123456789ABCDEF1";
    let sym_key = format!("/later.pdb/{id}/later.sym");
    assert_eq!(get_as(&s, &sym_key, "minidump-stackwalk").await, 404);
    let r = client()
        .put(format!("{}/api/files/later.sym", s.url))
        .bearer_auth(KEY)
        .body(format!(
            "MODULE windows x86_64 {id} later.pdb\nPUBLIC 1000 0 f\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_not_listed(&s, &sym_key).await;
    // Served by a package added since: no longer missing either.
    let packaged = "/pkg.pdb/3123456789ABCDEF0123456789ABCDEF1/pkg.pdb";
    assert_eq!(get_as(&s, packaged, "Microsoft-Symbol-Server").await, 404);
    let index = crate::packages::index(&[(packaged.trim_start_matches('/'), "f")]);
    let zip = crate::packages::make_zip(&[("symbol_index.json", &index), ("f", b"pdb")]);
    let r = client()
        .put(format!("{}/api/packages/later", s.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_not_listed(&s, packaged).await;
    // A key is needed; a bad order is refused.
    let r = client()
        .get(format!("{}/api/missing", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/api/missing?order=size", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_ledger_stays_within_its_bound() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        &format!(
            "{}[missing]\nmax_keys = 50\nflush_interval = \"50ms\"\n",
            auth_config(KEY)
        ),
    ));
    let url = s.url.clone();
    let paths: Vec<String> = (0..300)
        .map(|i| format!("/m{i}.pdb/0123456789ABCDEF0123456789ABCDEF1/m{i}.pdb"))
        .collect();
    for chunk in paths.chunks(25) {
        futures_util::future::join_all(chunk.iter().map(|p| {
            let url = format!("{url}{p}");
            async move { client().get(url).send().await.unwrap().status() }
        }))
        .await;
        // Several writes, each trimming to the bound.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let v = ledger(&s, "?order=recent&limit=1000").await;
    assert_eq!(v["total"], 50, "{}", v["total"]);
    // The keys kept are the ones asked last.
    let kept: Vec<&str> = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert!(
        kept.contains(&paths[299].trim_start_matches('/')),
        "{kept:?}"
    );
    assert!(!kept.contains(&paths[0].trim_start_matches('/')));
}
