//! In-process tests of the fill machinery: a real [`Cache`] on a temp dir, and a fake
//! upstream on a loopback port whose responses the tests script and hold at gates, so
//! "while the download is in progress" is a state the test controls, not a timing.

mod support;

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use symhub_core::SymbolKey;

use super::fill::{Fill, FillState, Progress};
use super::read::CHUNK;
use super::resolve::{Answer, Missing, Route};
use support::*;

// ---------------------------------------------------------------------------------------------
// Single flight and the tee

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_upstream_download() {
    let h = Arc::new(Harness::start().await);
    let body = payload(300_000);
    let gate = Gate::default();
    // Headers and a first piece, then (once every request is in) the rest, slowly.
    h.upstream.reply(
        &key(),
        Reply::to(&body)
            .send(..1000)
            .wait(&gate)
            .drip(1000.., 10, 20 * MS),
    );
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let h = h.clone();
        requests.spawn(async move { streaming(h.resolve(&key()).await) });
    }
    let answers = requests.join_all().await;
    gate.open();

    let routes: Vec<Route> = answers.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        routes.iter().filter(|r| **r == Route::Miss).count(),
        1,
        "{routes:?}"
    );
    assert_eq!(
        routes.iter().filter(|r| **r == Route::Coalesced).count(),
        19,
        "{routes:?}"
    );
    let reads = answers.iter().map(|(fill, _)| read_range(fill, 0, None));
    for got in futures_util::future::join_all(reads).await {
        assert!(
            got == body,
            "a reader got other bytes than the upstream sent"
        );
    }
    assert_eq!(h.upstream.hits(&key()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_joining_mid_download_reads_from_byte_zero() {
    let h = Harness::start().await;
    let body = payload(4 * CHUNK);
    let half = body.len() / 2;
    let gate = Gate::default();
    h.upstream.reply(
        &key(),
        Reply::to(&body)
            .send(..half)
            .wait(&gate)
            .drip(half.., 4, 10 * MS),
    );
    let (fill, route) = streaming(h.resolve(&key()).await);
    assert_eq!(route, Route::Miss);
    wait_written(&fill, half as u64).await;

    let (joined, route) = streaming(h.resolve(&key()).await);
    assert_eq!(route, Route::Coalesced);
    assert!(Arc::ptr_eq(&fill, &joined));
    let late = spawn_read(&joined, 0, None);
    gate.open();

    assert!(late.await.unwrap() == body, "the late reader missed bytes");
    assert!(read_range(&fill, 0, None).await == body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_hold_up_the_fill() {
    let h = Harness::start().await;
    let body = payload(8 * CHUNK);
    h.upstream.reply(&key(), Reply::whole(&body));
    let (fill, _) = streaming(h.resolve(&key()).await);

    // The reader takes one chunk, then sleeps until the test has seen the commit (or for
    // good, if it never comes), then reads on, still sleeping between chunks.
    let committed = Gate::default();
    let mut stream = open(&fill, 0, None);
    let first = stream.next().await.unwrap().unwrap();
    let reader = tokio::spawn({
        let committed = committed.clone();
        async move {
            committed.wait().await;
            let mut got = first.to_vec();
            while let Some(chunk) = stream.next().await {
                got.extend_from_slice(&chunk.unwrap());
                tokio::time::sleep(20 * MS).await;
            }
            got
        }
    });

    let entry = tokio::time::timeout(PATIENCE, fill.finished())
        .await
        .expect("the fill waited for its reader")
        .expect("the fill failed")
        .expect("nothing committed");
    assert!(!reader.is_finished());
    assert!(h.indexed(&key()));
    assert_eq!(entry.sha256, sha256(&body));
    committed.open();
    assert!(
        reader.await.unwrap() == body,
        "the slow reader got other bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// Commit order

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_committed_until_the_body_is_whole() {
    let h = Harness::start().await;
    let body = payload(3 * CHUNK + 123);
    let half = body.len() / 2;
    let gate = Gate::default();
    h.upstream.reply(
        &key(),
        Reply::to(&body).send(..half).wait(&gate).send(half..),
    );
    let (fill, _) = streaming(h.resolve(&key()).await);
    wait_written(&fill, half as u64).await;

    assert_eq!(h.objects(), Vec::<std::path::PathBuf>::new());
    assert!(!h.indexed(&key()));
    // The download's file: the unnamed spare (store::spare) where the filesystem has
    // O_TMPFILE, which nobody can open by a path; else one named temp file.
    let file = match &*fill.subscribe().borrow() {
        FillState::Streaming(p) => p.file.clone(),
        _ => unreachable!("bytes were written"),
    };
    let meta = file.metadata().unwrap();
    assert!(meta.len() >= half as u64);
    let names = std::os::unix::fs::MetadataExt::nlink(&meta);
    assert_eq!(
        h.temp_files().len() as u64,
        names,
        "unnamed, or one temp file"
    );

    gate.open();
    let entry = fill.finished().await.unwrap().unwrap();
    let objects = h.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(sha256(&std::fs::read(&objects[0]).unwrap()), sha256(&body));
    assert_eq!(entry.sha256, sha256(&body));
    assert!(h.indexed(&key()));
    assert!(h.temp_files().is_empty());

    match h.resolve(&key()).await {
        Answer::File { entry, file, route } => {
            assert_eq!(route, Route::CacheHit);
            let bytes = super::read::read_exact_at(&file, 0, entry.size as usize).unwrap();
            assert!(bytes == body);
        }
        other => panic!("expected the committed file, got {}", describe(&other)),
    }
    assert_eq!(h.upstream.hits(&key()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_fails_its_readers_and_leaves_nothing() {
    let h = Harness::start().await;
    let body = payload(2 * CHUNK);
    let half = body.len() / 2;
    let gate = Gate::default();
    h.upstream
        .reply(&key(), Reply::to(&body).send(..half).wait(&gate).cut());
    let (fill, _) = streaming(h.resolve(&key()).await);
    let (joined, route) = streaming(h.resolve(&key()).await);
    assert_eq!(route, Route::Coalesced);
    let readers = [
        tokio::spawn(read_to_end(open(&fill, 0, None))),
        tokio::spawn(read_to_end(open(&joined, 0, None))),
    ];
    wait_written(&fill, half as u64).await;
    gate.open();

    for reader in readers {
        let (got, ended) = reader.await.unwrap();
        assert!(
            ended.is_err(),
            "a cut body ended cleanly after {} bytes",
            got.len()
        );
        assert!(got.len() <= half && got[..] == body[..got.len()]);
    }
    assert!(fill.finished().await.is_err());
    assert!(h.objects().is_empty());
    assert!(!h.indexed(&key()));
    eventually("the temp file is removed", || h.temp_files().is_empty()).await;

    // Not remembered in any way: the next request downloads afresh.
    h.upstream.reply(&key(), Reply::whole(&body));
    let (fill, route) = streaming(h.resolve(&key()).await);
    assert_eq!(route, Route::Miss);
    assert!(read_range(&fill, 0, None).await == body);
    assert_eq!(h.upstream.hits(&key()), 2);
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(10 * MS).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_fill_in_progress_is_exactly_its_bytes() {
    let h = Harness::start().await;
    let body = payload(3 * CHUNK);
    let half = body.len() / 2;
    let gate = Gate::default();
    h.upstream.reply(
        &key(),
        Reply::to(&body).send(..half).wait(&gate).send(half..),
    );
    let (fill, _) = streaming(h.resolve(&key()).await);
    wait_written(&fill, half as u64).await;

    // Within what has arrived: served while the download is held.
    let got = read_range(&fill, 1000, Some(CHUNK as u64 + 5000)).await;
    assert!(got[..] == body[1000..CHUNK + 5000]);
    assert!(matches!(&*fill.subscribe().borrow(), FillState::Streaming(p) if p.done.is_none()));

    // Across what has not arrived yet: waits for it, then stops at the range's end.
    let (start, end) = (half - 10, half + CHUNK + 7);
    let across = spawn_read(&fill, start as u64, Some(end as u64));
    gate.open();
    assert!(across.await.unwrap()[..] == body[start..end]);
}

// ---------------------------------------------------------------------------------------------
// The hash gate of copies from the bucket

/// A copy of a stored file, made by hand, with every byte already in its temp file.
fn bucket_copy(body: &[u8]) -> (Arc<Fill>, Progress) {
    use std::io::Write;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(body).unwrap();
    let fill =
        Arc::new(Fill::new(key(), key().normalized().to_owned(), 0).bucket_copy(&"00".repeat(32)));
    let progress = Progress {
        file: Arc::new(file),
        len: Some(body.len() as u64),
        written: body.len() as u64,
        upstream: "store".into(),
        last_modified: SystemTime::now(),
        done: None,
    };
    fill.set_state(FillState::Streaming(progress.clone()));
    (fill, progress)
}

#[tokio::test]
async fn a_bucket_copy_holds_the_last_byte_of_a_range_until_checked() {
    let body = payload(1000);
    let (fill, progress) = bucket_copy(&body);
    let mut range = open(&fill, 100, Some(200));
    let mut whole = open(&fill, 0, None);
    assert!(read_until_held(&mut range, 99).await[..] == body[100..199]);
    assert!(read_until_held(&mut whole, 999).await[..] == body[..999]);

    fill.set_state(FillState::Streaming(Progress {
        done: Some(Ok(entry_for(&key(), &body))),
        ..progress
    }));
    let (rest, ended) = read_to_end(range).await;
    assert!(ended.is_ok() && rest[..] == body[199..200]);
    let (rest, ended) = read_to_end(whole).await;
    assert!(ended.is_ok() && rest[..] == body[999..]);
}

#[tokio::test]
async fn a_bucket_copy_failing_its_check_never_yields_the_last_byte() {
    let body = payload(1000);
    let (fill, progress) = bucket_copy(&body);
    let mut whole = open(&fill, 0, None);
    assert!(read_until_held(&mut whole, 999).await[..] == body[..999]);

    fill.set_state(FillState::Streaming(Progress {
        done: Some(Err(())),
        ..progress
    }));
    let (rest, ended) = read_to_end(whole).await;
    assert!(
        rest.is_empty(),
        "{} more bytes after a failed check",
        rest.len()
    );
    assert!(ended.is_err());
    // A reader that comes after the failure gets nothing at all.
    let (got, ended) = read_to_end(open(&fill, 0, None)).await;
    assert!(got.is_empty() && ended.is_err());
}

// ---------------------------------------------------------------------------------------------
// Negative entries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_remembered_and_not_asked_again() {
    let h = Harness::start().await;
    let first = h.resolve(&key()).await;
    assert!(
        matches!(
            first,
            Answer::NotFound {
                why: Missing::NotUpstream,
                route: Some(Route::Miss),
                ..
            }
        ),
        "{}",
        describe(&first)
    );
    let asked = h.upstream.total_hits();
    assert!(h.upstream.hits(&key()) == 1);

    let second = h.resolve(&key()).await;
    assert!(
        matches!(
            second,
            Answer::NotFound {
                why: Missing::Negative,
                ..
            }
        ),
        "{}",
        describe(&second)
    );
    assert_eq!(h.upstream.total_hits(), asked);
}

/// Two requests for one key sent upstream differently (a forwarded header): the one that
/// found nothing ends after the other committed the file. The file stays the answer for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_of_other_upstream_headers_never_hides_a_cached_file() {
    let h = Harness::start().await;
    let body = payload(3000);
    h.upstream.reply(&key(), Reply::whole(&body));
    let (fill, _) = streaming(h.resolve(&key()).await);
    fill.finished().await.unwrap();
    // The late miss, remembered for exactly what these requests send.
    let digest = h
        .cache
        .upstreams
        .wire_digest(&key(), &http::HeaderMap::new());
    let until = SystemTime::now() + std::time::Duration::from_secs(3600);
    let born = h.cache.generation();
    h.cache.keep(
        born,
        key().normalized(),
        super::Known::Negative { digest, until },
    );
    let answer = h.resolve(&key()).await;
    assert!(
        matches!(
            answer,
            Answer::File {
                route: Route::CacheHit,
                ..
            }
        ),
        "{}",
        describe(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_not_remembered() {
    let h = Harness::start().await;
    h.upstream.reply(&key(), Reply::Status(500));
    for asked in 1..=2 {
        let answer = h.resolve(&key()).await;
        assert!(
            matches!(
                answer,
                Answer::NotFound {
                    why: Missing::NotAnswered,
                    ..
                }
            ),
            "{}",
            describe(&answer)
        );
        assert_eq!(h.upstream.hits(&key()), asked);
    }
}

/// Where a miss of `key` asked with no headers is remembered.
fn plain_slot(h: &Harness, key: &SymbolKey) -> String {
    let digest = h.cache.upstreams.wire_digest(key, &http::HeaderMap::new());
    super::miss_slot(key.normalized(), digest)
}

/// Starts a fill of `key` asked with no headers, as a lookup that counted `ended` ends of
/// fills of the key would, and returns it (this request leads it).
fn lead_fill(h: &Harness, key: &SymbolKey, ended: u64) -> Arc<Fill> {
    let digest = h.cache.upstreams.wire_digest(key, &http::HeaderMap::new());
    let from = super::FillFrom::Upstreams {
        headers: http::HeaderMap::new(),
        target: None,
        digest,
        ended,
    };
    match h.cache.start_or_join_fill(key, plain_slot(h, key), from, 0) {
        super::Lookup::Fill { fill, leader: true } => fill,
        _ => panic!("expected to lead a new fill"),
    }
}

/// Reads the fill-end count a lookup of `key` would have read, then writes a negative entry
/// for its plain slot as a fill elsewhere would: returns that slot and the count.
fn negative_after_lookup(h: &Harness, key: &SymbolKey) -> (String, u64) {
    let slot = plain_slot(h, key);
    let ended = h.cache.fills_ended.of(key);
    let until = SystemTime::now() + std::time::Duration::from_secs(60);
    h.cache.index.put_negative(&slot, until).unwrap();
    (slot, ended)
}

/// A fill that starts after another one of its key ended with a 404 (the request's index
/// hop was slower than that whole fill) answers from the negative entry it left, and does
/// not ask upstreams again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_started_after_a_404_was_written_does_not_ask_again() {
    let h = Harness::start().await;
    let key = key();
    // What the other fill left, and its end, after this request's lookup had read the
    // index.
    let (slot, ended) = negative_after_lookup(&h, &key);
    let other = Arc::new(Fill::new(key.clone(), slot.clone(), 0));
    h.cache.end_fill(&other);
    let fill = lead_fill(&h, &key, ended);
    assert!(matches!(fill.headers().await, FillState::NotFound));
    assert_eq!(h.upstream.hits(&key), 0, "upstreams were not asked");
    assert!(matches!(
        h.resolve(&key).await,
        Answer::NotFound {
            why: Missing::Negative,
            ..
        }
    ));
}

/// Only fills write the cache index: a fill whose lookup read it after the last fill of its
/// key ended does not read it again before asking upstreams (that hop was on every cold
/// miss's way to its first byte). A negative entry that appeared without a fill ending is
/// therefore not seen.
#[tokio::test]
async fn a_fill_trusts_its_lookup_when_no_fill_of_its_key_ended_since() {
    let h = Harness::start().await;
    let key = key();
    let (_, ended) = negative_after_lookup(&h, &key);
    h.upstream.reply(&key, Reply::whole(&payload(1000)));
    let fill = lead_fill(&h, &key, ended);
    assert!(matches!(fill.headers().await, FillState::Streaming(_)));
    assert_eq!(h.upstream.hits(&key), 1, "upstreams were asked");
}

/// A file committed by a fill of another spelling of the key, after this request's lookup
/// read the index, is served: every spelling shares one file, so the fill reads the index
/// again rather than download it a second time (break-it pass: 322 such downloads under
/// load when the ends of fills were counted per spelling).
#[tokio::test]
async fn a_fill_finds_the_file_another_spelling_committed_since_its_lookup() {
    let h = Harness::start().await;
    let key = key();
    let ended = h.cache.fills_ended.of(&key);
    let body = payload(1000);
    h.upstream.reply(&key, Reply::whole(&body));
    let shouted = SymbolKey::parse_path(&key.as_str().to_uppercase()).unwrap();
    assert_eq!(shouted.normalized(), key.normalized());
    h.cache
        .index
        .insert(&super::index::CachedEntry {
            key: key.normalized().to_owned(),
            size: body.len() as u64,
            sha256: sha256(&body),
            last_modified: SystemTime::now(),
            upstream: "up".into(),
        })
        .unwrap();
    let other = Arc::new(Fill::new(shouted, "another spelling's slot".into(), 0));
    h.cache.end_fill(&other);
    let fill = lead_fill(&h, &key, ended);
    assert!(matches!(fill.headers().await, FillState::Ready(_)));
    assert_eq!(h.upstream.hits(&key), 0, "upstreams were not asked");
}
