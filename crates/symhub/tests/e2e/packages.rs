//! SSQP zip packages end to end: ingest, serve, precedence, replace, remove, hostile zips,
//! `.snupkg` key derivation, restart, and the `symhub package` command.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::*;

const KEY: &str = "pkgkey";

fn server() -> Symhub {
    Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)))
}

/// A zip of `(name, bytes)` entries, deflated.
pub(crate) fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub(crate) fn index(pairs: &[(&str, &str)]) -> Vec<u8> {
    let items: Vec<_> = pairs
        .iter()
        .map(|(k, b)| serde_json::json!({ "clientKey": k, "blobPath": b }))
        .collect();
    serde_json::to_vec(&items).unwrap()
}

async fn put(s: &Symhub, name: &str, zip: Vec<u8>) -> (u16, serde_json::Value) {
    let r = client()
        .put(format!("{}/api/packages/{name}", s.url))
        .bearer_auth(KEY)
        .body(zip)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

fn blob_count(s: &Symhub) -> usize {
    walk(&s.data_dir.join("store/objects")).len()
}

const A: &str = "foo.pdb/0123456789abcdef0123456789abcdef1/foo.pdb";
const B: &str = "foo.dll/5F00AA1000/foo.dll";
const C: &str = "_.debug/elf-buildid-sym-d8f1db379e2179d0896eb8f060cbff0576178c03/_.debug";

#[tokio::test]
async fn a_package_serves_every_key_byte_for_byte_with_shared_blobs_stored_once() {
    let s = server();
    let (pdb, dll) = (data(300_000, 1), data(50_000, 2));
    let zip = make_zip(&[
        (
            "symbol_index.json",
            &index(&[(A, "lib/foo.pdb"), (B, "bin/foo.dll"), (C, "lib/foo.pdb")]),
        ),
        ("lib/foo.pdb", &pdb),
        ("bin/foo.dll", &dll),
        ("README.txt", b"not mapped"),
    ]);
    let (status, v) = put(&s, "app-1.0", zip).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["keys"], 3);
    assert_eq!(v["blobs"], 2, "two keys share one blob");
    assert_eq!(blob_count(&s), 2);
    for (key, want) in [(A, &pdb), (B, &dll), (C, &pdb)] {
        let r = s.get(&format!("/{key}")).await;
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.headers()["x-symhub-source"], "store");
        assert_eq!(&r.bytes().await.unwrap(), want, "{key}");
    }
    let r = s.get(&format!("/{}", A.to_uppercase())).await;
    assert_eq!(r.bytes().await.unwrap(), pdb, "keys are case-insensitive");
    let r = client()
        .get(format!("{}/{A}", s.url))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), pdb.slice(10..20));
    assert_eq!(
        s.get("/README.txt/x/y").await.status(),
        404,
        "unmapped files are not served"
    );

    let list: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/packages?key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let p = &list["packages"][0];
    assert_eq!(p["name"], "app-1.0");
    assert_eq!(p["key_count"], 3);
    assert!(p["size"].as_u64().unwrap() > 0);
    assert!(p["added_at"].as_str().unwrap().ends_with('Z'));
    let shown: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/packages/app-1.0?key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(shown["keys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn duplicate_keys_and_missing_blobs_are_refused_with_nothing_visible() {
    let s = server();
    let dup = make_zip(&[
        (
            "symbol_index.json",
            &index(&[(A, "a"), (B, "b"), (&A.to_uppercase(), "b")]),
        ),
        ("a", b"1"),
        ("b", b"2"),
    ]);
    let (status, v) = put(&s, "dup", dup).await;
    assert_eq!(status, 422);
    assert_eq!(v["error"], "duplicate_keys");
    assert!(
        v["message"].as_str().unwrap().contains(&A.to_uppercase()),
        "{v}"
    );
    let missing = make_zip(&[
        ("symbol_index.json", &index(&[(A, "a"), (B, "nope/b")])),
        ("a", b"1"),
    ]);
    let (status, v) = put(&s, "missing", missing).await;
    assert_eq!(status, 422);
    assert_eq!(v["error"], "missing_blob");
    assert!(v["message"].as_str().unwrap().contains("nope/b"));
    for bad_index in [
        &b"{\"clientKey\": 1}"[..],
        b"[{\"clientKey\": \"a/b/c\"}]",
        b"not json",
        br#"[{"clientKey": "../x/y", "blobPath": "a"}]"#,
    ] {
        let zip = make_zip(&[("symbol_index.json", bad_index), ("a", b"1")]);
        let (status, v) = put(&s, "bad", zip).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"], "bad_index");
    }
    let none = make_zip(&[("a", b"1")]);
    assert_eq!(put(&s, "none", none).await.0, 422);
    assert_eq!(s.get(&format!("/{A}")).await.status(), 404);
    assert_eq!(blob_count(&s), 0, "nothing stored");
    let list: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/packages?key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(list["packages"].as_array().unwrap().is_empty());
}

/// Renames entry `from` to `to` (of the same length) in a zip's local and central headers.
pub(crate) fn rename_entries(zip: &mut [u8], from: &[u8], to: &[u8]) {
    let mut renamed = 0;
    for at in 0..zip.len() - from.len() {
        if &zip[at..at + from.len()] == from {
            zip[at..at + from.len()].copy_from_slice(to);
            renamed += 1;
        }
    }
    assert_eq!(renamed, 2, "one local and one central header");
}

/// Sets bits in every local and central header of a zip (flags or method), as a hostile
/// tool would write them.
fn patch_headers(zip: &mut [u8], local_at: usize, central_at: usize, value: u16, or: bool) {
    let mut i = 0;
    while i + 4 <= zip.len() {
        let at = match &zip[i..i + 4] {
            b"PK\x03\x04" => Some(i + local_at),
            b"PK\x01\x02" => Some(i + central_at),
            _ => None,
        };
        if let Some(at) = at {
            let old = u16::from_le_bytes([zip[at], zip[at + 1]]);
            let new = if or { old | value } else { value };
            zip[at..at + 2].copy_from_slice(&new.to_le_bytes());
        }
        i += 1;
    }
}

#[tokio::test]
async fn hostile_zips_are_refused_and_nothing_is_written_outside_the_data_dir() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[packages]\nmax_entries = 50\nmax_unpacked_size = \"20 MiB\"\n",
        auth_config(KEY)
    ));
    let outside = s.data_dir.parent().unwrap().to_path_buf();
    let before = walk(&outside).len();
    let idx = |blob: &str| index(&[(A, blob)]);

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "zip slip",
            make_zip(&[
                ("symbol_index.json", &idx("../../evil")),
                ("../../evil", b"x"),
            ]),
        ),
        (
            "absolute",
            make_zip(&[
                ("symbol_index.json", &idx("/tmp/evil")),
                ("/tmp/evil", b"x"),
            ]),
        ),
        (
            "backslash",
            make_zip(&[("symbol_index.json", &idx("..\\evil")), ("..\\evil", b"x")]),
        ),
        ("too many entries", {
            let names: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
            let mut entries: Vec<(&str, &[u8])> =
                names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
            let i = idx("f0");
            entries.push(("symbol_index.json", &i));
            make_zip(&entries)
        }),
        (
            "too big unpacked",
            make_zip(&[
                ("symbol_index.json", &idx("big")),
                ("big", &data(21 << 20, 3)),
            ]),
        ),
        (
            "ratio bomb",
            make_zip(&[
                ("symbol_index.json", &idx("zeros")),
                ("zeros", &vec![0u8; 15 << 20]),
            ]),
        ),
        ("not a zip", data(5000, 4).to_vec()),
        ("truncated zip", {
            let z = make_zip(&[("symbol_index.json", &idx("a")), ("a", &data(10_000, 5))]);
            z[..z.len() / 2].to_vec()
        }),
    ];
    // Two entries of one name (the zip writer refuses to make them: renamed after), and two
    // indexes: which one counts would depend on the reader.
    let mut twice = make_zip(&[
        ("symbol_index.json", &idx("dupAAAA")),
        ("dupAAAA", b"first"),
        ("dupBBBB", b"second"),
    ]);
    rename_entries(&mut twice, b"dupBBBB", b"dupAAAA");
    cases.push(("an entry twice", twice));
    let mut two_indexes = make_zip(&[
        ("symbol_index.json", &idx("a")),
        ("symbol_index.jsoX", &idx("b")),
        ("a", b"x"),
        ("b", b"y"),
    ]);
    rename_entries(&mut two_indexes, b"symbol_index.jsoX", b"symbol_index.json");
    cases.push(("two indexes", two_indexes));
    // A symlink entry.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("symbol_index.json", opts).unwrap();
    w.write_all(&idx("link")).unwrap();
    w.add_symlink("link", "/etc/passwd", opts).unwrap();
    cases.push(("symlink", w.finish().unwrap().into_inner()));
    // Encrypted entries (general-purpose flag bit 0).
    let mut enc = make_zip(&[("symbol_index.json", &idx("a")), ("a", b"secret")]);
    patch_headers(&mut enc, 6, 8, 1, true);
    cases.push(("encrypted", enc));
    // A compression method other than stored/deflate (12 = bzip2).
    let mut bz = make_zip(&[("symbol_index.json", &idx("a")), ("a", b"data")]);
    patch_headers(&mut bz, 8, 10, 12, false);
    cases.push(("bzip2", bz));
    // A header that lies about the unpacked size (declares 4 bytes for 10 000).
    let mut lying = make_zip(&[("a", &data(10_000, 6)), ("symbol_index.json", &idx("a"))]);
    let cd = lying.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    lying[cd + 24..cd + 28].copy_from_slice(&4u32.to_le_bytes());
    cases.push(("lying size", lying));

    for (what, zip) in cases {
        let (status, v) = put(&s, "hostile", zip).await;
        assert!(status == 422 || status == 413, "{what}: {status} {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        assert_eq!(blob_count(&s), 0, "{what}: nothing stored");
        assert_eq!(s.get(&format!("/{A}")).await.status(), 404, "{what}");
    }
    assert_eq!(
        walk(&outside).len(),
        before,
        "nothing written outside the data dir"
    );
    assert!(!std::path::Path::new("/tmp/evil").exists());
    assert!(
        walk(&s.data_dir.join("store/tmp")).is_empty(),
        "temp files removed"
    );

    // A zip inside the package is just a blob.
    let inner = make_zip(&[("x", b"y")]);
    let nested = make_zip(&[
        ("symbol_index.json", &idx("inner.zip")),
        ("inner.zip", &inner),
    ]);
    assert_eq!(put(&s, "nested", nested).await.0, 201);
    assert_eq!(s.get(&format!("/{A}")).await.bytes().await.unwrap(), inner);
}

#[tokio::test]
async fn first_added_package_wins_and_removing_it_exposes_the_other() {
    let mut s = server();
    let one = make_zip(&[
        ("symbol_index.json", &index(&[(A, "a"), (B, "b")])),
        ("a", b"one-a"),
        ("b", b"one-b"),
    ]);
    let two = make_zip(&[
        ("symbol_index.json", &index(&[(A, "a"), (C, "c")])),
        ("a", b"two-a"),
        ("c", b"two-c"),
    ]);
    assert_eq!(put(&s, "one", one).await.0, 201);
    assert_eq!(put(&s, "two", two).await.0, 201);
    assert_eq!(s.get(&format!("/{A}")).await.text().await.unwrap(), "one-a");
    s.restart();
    assert_eq!(
        s.get(&format!("/{A}")).await.text().await.unwrap(),
        "one-a",
        "stable across restarts"
    );
    assert_eq!(s.get(&format!("/{C}")).await.text().await.unwrap(), "two-c");
    let r = client()
        .delete(format!("{}/api/packages/one", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get(&format!("/{A}")).await.text().await.unwrap(),
        "two-a",
        "falls back"
    );
    assert_eq!(s.get(&format!("/{B}")).await.status(), 404);
    assert_eq!(
        blob_count(&s),
        2,
        "the removed package's own blobs are deleted"
    );
    let r = client()
        .delete(format!("{}/api/packages/one", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .delete(format!("{}/api/packages/two", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "management needs a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_is_atomic_under_concurrent_reads() {
    let s = server();
    let v1 = data(200_000, 11);
    let v2 = data(200_000, 12);
    let zip = |body: &[u8]| {
        make_zip(&[
            ("symbol_index.json", &index(&[(A, "a"), (B, "a")])),
            ("a", body),
        ])
    };
    assert_eq!(put(&s, "app", zip(&v1)).await.0, 201);
    let url = format!("{}/{A}", s.url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, v1, v2) = (url.clone(), stop.clone(), v1.clone(), v2.clone());
            tokio::spawn(async move {
                let (mut old, mut new) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client().get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200, "never a gap");
                    let body = r.bytes().await.unwrap();
                    if body == v1 {
                        old += 1;
                    } else if body == v2 {
                        new += 1;
                    } else {
                        panic!("a mix of versions");
                    }
                }
                (old, new)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..6 {
        let body = if i % 2 == 0 { &v2 } else { &v1 };
        let (status, v) = put(&s, "app", zip(body)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["replaced"], true);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for r in readers {
        let (o, n) = r.await.unwrap();
        old += o;
        new += n;
    }
    assert!(old > 0 && new > 0, "both versions were seen ({old}, {new})");
    assert_eq!(s.get(&format!("/{A}")).await.bytes().await.unwrap(), v1);
    assert_eq!(blob_count(&s), 1, "replaced blobs are deleted");
}

#[tokio::test]
async fn a_snupkg_yields_the_portable_pdb_key_and_explicit_mappings_win() {
    let s = server();
    let pdb = std::fs::read(fixtures().join("dotnet/System.Threading.Thread.pdb")).unwrap();
    let snupkg = make_zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("lib/netstandard2.0/System.Threading.Thread.pdb", &pdb),
        ("System.Threading.Thread.nuspec", b"<package/>"),
    ]);
    let (status, v) = put(&s, "System.Threading.Thread.4.3.0", snupkg).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["derived_keys"], 1);
    let key = "/system.threading.thread.pdb/a43b38726e6a4b3cb1691f35f0d6cc48FFFFFFFF/system.threading.thread.pdb";
    let r = s.get(key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), pdb);

    // A later package mapping the same key explicitly wins over the derived one.
    let explicit = make_zip(&[
        ("symbol_index.json", &index(&[(&key[1..], "other")])),
        ("other", b"explicit"),
    ]);
    assert_eq!(put(&s, "explicit", explicit).await.0, 201);
    assert_eq!(s.get(key).await.text().await.unwrap(), "explicit");
}

#[tokio::test]
async fn the_package_command_works_on_a_data_dir_and_through_a_server() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tools-2.1.zip");
    std::fs::write(
        &file,
        make_zip(&[("symbol_index.json", &index(&[(A, "a")])), ("a", b"local")]),
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Offline, on the running server's data dir: the server notices within a second.
    assert_eq!(s.get(&format!("/{A}")).await.status(), 404);
    let data_dir = s.data_dir.to_str().unwrap().to_owned();
    let f = file.to_str().unwrap().to_owned();
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, f) = (data_dir.clone(), f.clone());
        move || cmd(&["package", "add", "--data-dir", &d, &f])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("tools-2.1: 1 keys"), "{out}");
    // A pipe gets the summary alone: progress is drawn on a terminal only.
    assert!(!out.contains('\r'), "progress written into a pipe: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = s.get(&format!("/{A}")).await;
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "local");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never saw the package"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Through the server, with a key.
    let url = s.url.clone();
    let (ok, out) = tokio::task::spawn_blocking({
        let (u, f) = (url.clone(), f.clone());
        move || {
            cmd(&[
                "package", "add", "--url", &u, "--key", KEY, "--name", "remote", &f,
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(!out.contains('\r'), "progress written into a pipe: {out:?}");
    let (ok, out) = tokio::task::spawn_blocking({
        let u = url.clone();
        move || cmd(&["package", "list", "--url", &u, "--key", KEY])
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("tools-2.1") && out.contains("remote"),
        "{out}"
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let d = data_dir.clone();
        move || cmd(&["package", "show", "--data-dir", &d, "remote"])
    })
    .await
    .unwrap();
    assert!(ok && out.contains(A), "{out}");
    let (ok, out) = tokio::task::spawn_blocking({
        let u = url.clone();
        move || cmd(&["package", "remove", "--url", &u, "--key", KEY, "tools-2.1"])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert_eq!(
        s.get(&format!("/{A}")).await.text().await.unwrap(),
        "local",
        "the other package still maps it"
    );
}

/// The SSQP package spec's own example (dotnet/symstore `Package_Based_Symbol_Server.md`, its
/// two JSON typos repaired): one-segment keys beside a three-segment one. Keys of any shape but
/// `<file>/<id>/<name>` are served from the store only, so an upstream never hears of them.
#[tokio::test]
async fn the_spec_example_index_with_one_segment_keys_is_served_from_the_store_only() {
    let up = FakeUpstream::start().await;
    // Were symhub to ask, the upstream would answer (slowly) with other bytes.
    for path in ["/nothere", "/12387532"] {
        let slow = Serve::bytes(&b"upstream"[..]).delay(Duration::from_secs(3));
        up.route(path, Behavior::Serve(slow));
    }
    let mut s = Symhub::start(&config_with(&[("up", &up.url, "")], &auth_config(KEY)));
    let spec_index = br#"[ {"clientKey": "12387532", "blobPath": "debug_info.txt"},
  {"clientKey": "MyProgram.exe/09safnf82asddasdqwd998vds/MyProgram.exe", "blobPath": "MyProgram.exe"},
  {"clientKey": "12-09", "blobPath": "Content/localized/en-us/data.xml"},
  {"clientKey": "312&312-123*&^ndw", "blobPath": "Content/localized/en-us/data.xml"} ]"#;
    let (info, exe, xml) = (data(1000, 21), data(70_000, 22), data(3000, 23));
    let zip = make_zip(&[
        ("symbol_index.json", spec_index),
        ("debug_info.txt", &info),
        ("MyProgram.exe", &exe),
        ("Content/localized/en-us/data.xml", &xml),
    ]);
    let (status, v) = put(&s, "spec", zip).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["keys"], 4);
    assert_eq!(v["blobs"], 3, "data.xml is stored once for its two keys");
    assert_eq!(blob_count(&s), 3);
    let exe_key = "MyProgram.exe/09safnf82asddasdqwd998vds/MyProgram.exe";
    let (upper, lower) = (exe_key.to_uppercase(), exe_key.to_lowercase());
    let expected = [
        ("/12387532", &info),
        ("/12-09", &xml),
        // As a client sends `312&312-123*&^ndw`: each segment percent-encoded.
        ("/312%26312-123%2A%26%5Endw", &xml),
        ("/312%26312-123%2A%26%5ENDW", &xml),
        (&format!("/{exe_key}"), &exe),
        (&format!("/{upper}"), &exe),
        (&format!("/{lower}"), &exe),
    ];
    for round in ["ingested", "restarted"] {
        for (path, want) in &expected {
            let r = s.get(path).await;
            assert_eq!(r.status(), 200, "{round}: {path}");
            assert_eq!(r.headers()["x-symhub-source"], "store", "{path}");
            assert_eq!(&r.bytes().await.unwrap(), *want, "{round}: {path}");
        }
        // Twice: a miss is never remembered as a negative entry.
        for _ in 0..2 {
            let started = Instant::now();
            let r = s.get("/nothere").await;
            assert_eq!(r.status(), 404, "{round}");
            assert_eq!(r.headers()["x-cache"], "MISS", "{round}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{round}: waited"
            );
        }
        assert_eq!(up.total_hits(), 0, "{round}: {:?}", up.requests());
        if round == "ingested" {
            s.restart();
        }
    }
    // The upstream is wired: a three-segment miss is asked of it.
    assert_eq!(s.get("/a.pdb/1/a.pdb").await.status(), 404);
    assert_eq!(up.hits("/a.pdb/1/a.pdb"), 1);
}
