//! The deletion rule on a local store: shared bytes, replaced keys, blobs going with their
//! last user, refusals. (The PostgreSQL side: `tests/e2e/scale/transactions.rs`.)

use super::*;
use crate::store::symbols::Received;
use crate::store::symbols::{Committed, ModuleId, Origin};

fn received(store: &SymbolStore, bytes: &[u8]) -> Received {
    use sha2::Digest;
    let path = store
        .blobs
        .dir()
        .tmp_dir()
        .join(hex::encode(rand::random::<[u8; 8]>()));
    std::fs::write(&path, bytes).unwrap();
    Received {
        path: tempfile::TempPath::try_from_path(path).unwrap(),
        size: bytes.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
    }
}

fn key(s: &str) -> SymbolKey {
    SymbolKey::parse_path(s).unwrap()
}

fn module() -> ModuleId {
    ModuleId {
        kind: "PE".into(),
        debug_file: "a".into(),
        debug_id: "1".into(),
        ..ModuleId::default()
    }
}

/// Commits `bytes` under `keys`, in transaction `tx` if given; returns the blob's hash.
fn put(store: &SymbolStore, tx: Option<i64>, keys: &[&str], bytes: &[u8]) -> String {
    let r = received(store, bytes);
    let sha = r.sha256.clone();
    let keys: Vec<_> = keys.iter().map(|k| key(k)).collect();
    store
        .commit_in(r, &keys, &module(), &Origin::new(tx, None))
        .unwrap();
    sha
}

fn sha_of(store: &SymbolStore, k: &str) -> Option<String> {
    store.get(k).unwrap().map(|s| s.sha256)
}

fn open() -> (tempfile::TempDir, SymbolStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SymbolStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn two_transactions_share_bytes_and_each_delete_keeps_what_the_other_needs() {
    let (_dir, store) = open();
    let t1 = store
        .begin_transaction("app", "1.0", "nightly", "ci")
        .unwrap();
    let t2 = store.begin_transaction("app", "1.1", "", "ci").unwrap();
    let shared = put(&store, Some(t1), &["a.pdb/1/a.pdb"], b"shared bytes");
    let own = put(&store, Some(t1), &["b.pdb/1/b.pdb"], b"only t1");
    // The same bytes under the same key: a duplicate, still recorded in t2.
    let r = received(&store, b"shared bytes");
    let c = store
        .commit_in(
            r,
            &[key("a.pdb/1/a.pdb")],
            &module(),
            &Origin::new(Some(t2), None),
        )
        .unwrap();
    assert_eq!(c, Committed::Duplicate);
    let keys = store.transaction_keys(t2, "", 10).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].display.as_str(), &keys[0].sha256),
        ("a.pdb/1/a.pdb", &shared)
    );

    let list = store.list_transactions(Some("app"), None).unwrap();
    assert_eq!(list.iter().map(|t| t.key_count).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(list[0].bytes, 12 + 7);
    assert_eq!(store.list_transactions(None, Some("1.1")).unwrap().len(), 1);

    let report = store.delete_transaction(t1).unwrap();
    assert_eq!((report.keys_removed, report.keys_kept), (1, 1));
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(sha_of(&store, "a.pdb/1/a.pdb"), Some(shared.clone()));
    assert_eq!(sha_of(&store, "b.pdb/1/b.pdb"), None);
    assert!(store.blob_path(&shared).exists());
    assert!(!store.blob_path(&own).exists());

    // The last user goes: so do the key and the blob.
    let report = store.delete_transaction(t2).unwrap();
    assert_eq!((report.keys_removed, report.blobs_removed), (1, 1));
    assert_eq!(sha_of(&store, "a.pdb/1/a.pdb"), None);
    assert!(!store.blob_path(&shared).exists());
    let t = store.transaction(t1).unwrap().unwrap();
    assert_eq!((t.state.as_str(), t.key_count), ("deleted", 2));
    assert!(t.deleted_at.is_some());
    let left: Vec<_> = store
        .db
        .query("SELECT sha256 FROM upload_new_blobs", p![])
        .unwrap();
    assert!(left.is_empty(), "the crash notes are gone");
}

#[test]
fn a_key_replaced_after_the_transaction_is_kept() {
    let (_dir, store) = open();
    let t = store.begin_transaction("app", "1", "", "ci").unwrap();
    let old = put(&store, Some(t), &["c.pdb/1/c.pdb", "c.pdb/2/c.pdb"], b"old");
    let new = put(&store, None, &["c.pdb/1/c.pdb"], b"newer upload");
    let report = store.delete_transaction(t).unwrap();
    assert_eq!((report.keys_removed, report.keys_kept), (1, 1));
    assert_eq!(sha_of(&store, "c.pdb/1/c.pdb"), Some(new));
    assert_eq!(sha_of(&store, "c.pdb/2/c.pdb"), None);
    assert!(!store.blob_path(&old).exists());
}

#[test]
fn bytes_another_key_uses_survive_and_go_with_their_last_user() {
    let (_dir, store) = open();
    let t = store.begin_transaction("app", "1", "", "ci").unwrap();
    let sha = put(&store, Some(t), &["d.pdb/1/d.pdb"], b"same bytes");
    put(&store, None, &["e.pdb/1/e.pdb"], b"same bytes");
    let report = store.delete_transaction(t).unwrap();
    assert_eq!((report.keys_removed, report.blobs_removed), (1, 0));
    assert!(store.blob_path(&sha).exists(), "e.pdb still uses it");
    // The bytes go when the last key does (here: replaced by other bytes).
    put(&store, None, &["e.pdb/1/e.pdb"], b"other");
    assert!(!store.blob_path(&sha).exists());
}

#[test]
fn closed_or_unknown_transactions_refuse_keys_and_deletion() {
    let (_dir, store) = open();
    assert!(matches!(
        store.begin_transaction(" ", "1", "", "ci"),
        Err(TransactionError::Invalid(_))
    ));
    assert!(matches!(
        store.begin_transaction("a\u{7}", "1", "", "ci"),
        Err(TransactionError::Invalid(_))
    ));
    assert!(matches!(
        store.begin_transaction("app", "1", &"x".repeat(MAX_COMMENT + 1), "ci"),
        Err(TransactionError::Invalid(_))
    ));
    let t = store
        .begin_transaction(" app ", "1", "line\nbreak", "ci")
        .unwrap();
    assert_eq!(store.transaction(t).unwrap().unwrap().product, "app");
    store.delete_transaction(t).unwrap();
    assert!(matches!(
        store.delete_transaction(t),
        Err(TransactionError::Deleted(_))
    ));
    assert!(matches!(
        store.delete_transaction(t + 100),
        Err(TransactionError::Unknown(_))
    ));
    let r = received(&store, b"late");
    let sha = r.sha256.clone();
    let e = store
        .commit_in(
            r,
            &[key("f.pdb/1/f.pdb")],
            &module(),
            &Origin::new(Some(t), None),
        )
        .unwrap_err();
    assert!(matches!(
        e.downcast_ref::<TransactionError>(),
        Some(TransactionError::Deleted(_))
    ));
    assert_eq!(sha_of(&store, "f.pdb/1/f.pdb"), None);
    assert!(!store.blob_path(&sha).exists());
    assert!(matches!(
        store.delete_transactions_of("app", Some("1")),
        Err(TransactionError::NoMatch(_))
    ));
}

#[test]
fn deleting_by_product_takes_every_live_version() {
    let (_dir, store) = open();
    let a = store.begin_transaction("app", "1", "", "ci").unwrap();
    let b = store.begin_transaction("app", "2", "", "ci").unwrap();
    let other = store.begin_transaction("tool", "1", "", "ci").unwrap();
    put(&store, Some(a), &["g.pdb/1/g.pdb"], b"g1");
    put(&store, Some(b), &["g.pdb/2/g.pdb"], b"g2");
    put(&store, Some(other), &["h.pdb/1/h.pdb"], b"h");
    let reports = store.delete_transactions_of("app", None).unwrap();
    assert_eq!(reports.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(sha_of(&store, "g.pdb/2/g.pdb"), None);
    assert!(sha_of(&store, "h.pdb/1/h.pdb").is_some());
}

#[test]
fn bytes_uploaded_outside_any_transaction_survive_a_transaction_that_names_them() {
    let (_dir, store) = open();
    // A plain upload, then a run that only found it there (`/api/files/missing`), and a
    // run that uploaded the same bytes again: deleting either run keeps the key.
    let sha = put(&store, None, &["kept.pdb/1/kept.pdb"], b"uploaded by hand");
    let finder = store.begin_transaction("try", "1", "", "ci").unwrap();
    assert!(store
        .record_held(finder, &[key("kept.pdb/1/kept.pdb")], &sha, 16)
        .unwrap());
    let again = store.begin_transaction("try", "2", "", "ci").unwrap();
    put(
        &store,
        Some(again),
        &["kept.pdb/1/kept.pdb"],
        b"uploaded by hand",
    );
    for id in [finder, again] {
        let report = store.delete_transaction(id).unwrap();
        assert_eq!((report.keys_removed, report.keys_kept), (0, 1));
    }
    assert_eq!(sha_of(&store, "kept.pdb/1/kept.pdb"), Some(sha.clone()));
    // In the other order: a run's own upload, later uploaded again outside any run.
    let run = store.begin_transaction("try", "3", "", "ci").unwrap();
    let own = put(
        &store,
        Some(run),
        &["late.pdb/1/late.pdb"],
        b"first in a run",
    );
    put(&store, None, &["late.pdb/1/late.pdb"], b"first in a run");
    store.delete_transaction(run).unwrap();
    assert_eq!(sha_of(&store, "late.pdb/1/late.pdb"), Some(own));
    // New bytes from a run replace pinned ones: those are the run's, and go with it.
    let replacer = store.begin_transaction("try", "4", "", "ci").unwrap();
    put(
        &store,
        Some(replacer),
        &["kept.pdb/1/kept.pdb"],
        b"new bytes from a run",
    );
    assert_eq!(store.delete_transaction(replacer).unwrap().keys_removed, 1);
    assert_eq!(sha_of(&store, "kept.pdb/1/kept.pdb"), None);
}
