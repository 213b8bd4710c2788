//! debuginfod through symhub with the real clients: elfutils' `debuginfod-find` and gdb
//! against ELF files and sources uploaded to symhub, and symhub federating to elfutils' own
//! server.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::elf_support::*;
use crate::support::*;

const KEY: &str = "debuginfod-test-key";

/// Uploads `file` through sym-upload v2 as a native file of `kind` (`ELF`, `DEBUG_ONLY`).
pub(crate) async fn upload_native(s: &Symhub, file: &Path, name: &str, id: &str, kind: &str) {
    upload_native_with(s, KEY, file, name, id, kind).await
}

/// [`upload_native`] with the API key `key`.
pub(crate) async fn upload_native_with(
    s: &Symhub,
    key: &str,
    file: &Path,
    name: &str,
    id: &str,
    kind: &str,
) {
    let url = s.create_upload(key).await;
    let r = client()
        .put(&url)
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upload_key = url.rsplit('/').nth(1).unwrap();
    let body = format!(
        r#"{{"symbol_id": {{"debug_file": "{name}", "debug_id": "{id}"}}, "symbol_upload_type": "{kind}"}}"#
    );
    let r = client()
        .post(format!(
            "{}/v1/uploads/{upload_key}:complete?key={key}",
            s.url
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The C program of the rig, built and split in a temp dir (kept alive with it); `None`
/// (the test skips) when elfutils' tools are missing and not required.
fn program() -> Option<(tempfile::TempDir, Built)> {
    if !elfutils_tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let built = blocking(|| build_c_program(dir.path()));
    Some((dir, built))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_elf_files_are_served_to_debuginfod_clients() {
    let Some((_dir, built)) = program() else {
        return;
    };
    let id = built.build_id.clone();
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    // The debug file first, under the binary's name (as a build script would): neither
    // upload may replace the other (the stripped binary has no DWARF, so it is not the
    // debuginfo; the debug file is not the binary).
    upload_native(&s, &built.debug, "hello", &id, "DEBUG_ONLY").await;
    upload_native(&s, &built.stripped, "hello", &id, "ELF").await;
    for src in &built.sources {
        let r = client()
            .put(format!(
                "{}/api/sources/{id}{}?key={KEY}",
                s.url,
                src.display()
            ))
            .body(std::fs::read(src).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // A source path that would climb out of the root is refused, and nothing stored.
    let r = client()
        .put(format!(
            "{}/api/sources/{id}/a/%2e%2e/%2e%2e/etc/passwd?key={KEY}",
            s.url
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let debug = std::fs::read(&built.debug).unwrap();
    let exe = std::fs::read(&built.stripped).unwrap();

    let url = s.url.clone();
    let (u, i) = (url.clone(), id.clone());
    let found = blocking(move || {
        [
            debuginfod_find(&[&u], &["debuginfo", &i]),
            debuginfod_find(&[&u], &["executable", &i]),
            debuginfod_find(&[&u], &["section", &i, ".debug_info"]),
        ]
    });
    assert!(found[0].ok(), "{}", found[0].describe());
    assert!(found[0].bytes() == debug, "debuginfo byte-identical");
    assert!(found[1].ok(), "{}", found[1].describe());
    assert!(found[1].bytes() == exe, "executable byte-identical");
    assert!(found[2].ok(), "{}", found[2].describe());
    let parsed = symhub_core::elf::ElfFile::parse(&debug).unwrap();
    assert!(found[2].bytes() == parsed.section(".debug_info").unwrap());

    // Sections answer like every hit: Range, ETag, X-Cache, conditional requests.
    let section = parsed.section(".debug_info").unwrap().to_vec();
    let section_url = format!("{}/buildid/{id}/section/.debug_info", s.url);
    let r = client()
        .get(&section_url)
        .header("range", "bytes=2-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 2-9/{}", section.len()).as_str()
    );
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(
        r.headers()["x-debuginfod-size"],
        section.len().to_string().as_str()
    );
    let etag = r.headers()["etag"].clone();
    assert_eq!(&r.bytes().await.unwrap()[..], &section[2..10]);
    let r = client()
        .get(&section_url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // The binary under its SymSrv key is still the binary.
    let r = s.get(&format!("/hello/{id}/hello")).await;
    assert!(
        r.bytes().await.unwrap() == exe,
        "the debug file did not replace the binary"
    );
    // One file, two spellings.
    let r = s
        .get(&format!("/_.debug/elf-buildid-sym-{id}/_.debug"))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == debug);
    // HEAD answers like GET, without a body.
    let r = client()
        .head(format!(
            "{}/buildid/{}/executable",
            s.url,
            id.to_uppercase()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        exe.len().to_string().as_str()
    );
    assert_eq!(
        r.headers()["x-debuginfod-size"],
        exe.len().to_string().as_str()
    );
    assert!(r.headers().contains_key("last-modified"));

    // Sources by their DWARF paths, and gdb listing a function with debug info and source
    // that it can only have had from symhub.
    for src in built.sources.clone() {
        let (u, i) = (url.clone(), id.clone());
        let path = src.to_str().unwrap().to_owned();
        let found = blocking(move || debuginfod_find(&[&u], &["source", &i, &path]));
        assert!(found.ok(), "{}\n{}", found.describe(), s.stderr());
        assert_eq!(found.bytes(), std::fs::read(&src).unwrap());
    }
    let gdb = blocking(|| {
        gdb_list_with_debuginfod(&[&url], &built.stripped, "greet_count", &built.src_dir)
    });
    assert!(
        gdb.contains("Downloading separate debug info for")
            && gdb.contains("int greet_count(const char *name)")
            && gdb.contains("printf(\"hello, %s\\n\", name);"),
        "gdb listed the function's source through symhub:\n{gdb}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_debuginfod_requests_are_404_and_change_nothing() {
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&config_with(
        &[("d", &up.url, "protocol = \"debuginfod\"")],
        "",
    ));
    let before = s.files();
    let id = "0123456789abcdef0123456789abcdef01234567";
    for path in [
        "/buildid/xyz/debuginfo".to_owned(),
        "/buildid/abc/debuginfo".to_owned(),
        format!("/buildid/{}/debuginfo", "ab".repeat(200)),
        format!("/buildid/{id}/nonsense"),
        format!("/buildid/{id}/source/../etc/passwd"),
        format!("/buildid/{id}/source/%2e%2e/%2e%2e/etc/passwd"),
        format!("/buildid/{id}/source/usr/../../etc/passwd"),
        format!("/buildid/{id}/section/"),
        format!("/buildid/{id}/section/a%2fb"),
    ] {
        let r = s.get_now(&path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(up.total_hits(), 0, "nothing was asked upstream");
    assert_eq!(s.files(), before, "nothing was written");
    // A valid request for a section nobody has: 404, asked upstream as debuginfo and
    // executable, never as a section.
    let r = s.get(&format!("/buildid/{id}/section/.debug_info")).await;
    assert_eq!(r.status(), 404);
    let asked: Vec<String> = up.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        asked.iter().filter(|p| p.contains("/section/")).count(),
        0,
        "{asked:?}"
    );
    assert!(
        asked.contains(&format!("/buildid/{id}/debuginfo")),
        "{asked:?}"
    );
    assert!(
        asked.contains(&format!("/buildid/{id}/executable")),
        "{asked:?}"
    );
    // Upstreams are sent one hop more than the client's `X-Forwarded-For`; a request that
    // crossed other servers is sent differently, so it does not share the remembered miss.
    let debuginfo = format!("/buildid/{id}/debuginfo");
    let hops = || -> Vec<String> {
        up.requests()
            .into_iter()
            .filter(|(p, _)| *p == debuginfo)
            .map(|(_, h)| h["x-forwarded-for"].to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(hops(), ["symhub"]);
    let r = client()
        .get(format!("{}{debuginfo}", s.url))
        .header("x-forwarded-for", "10.0.0.1, 10.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(hops(), ["symhub", "symhub, symhub, symhub"]);
    assert_eq!(s.get(&debuginfo).await.headers()["x-cache"], "NEGATIVE");
    assert_eq!(hops().len(), 2, "remembered for the client without hops");
}

/// symhub in front of elfutils' own server: one download for many clients, remembered
/// misses, a dead upstream costing a fast 404, and loops stopped by hop counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symhub_federates_to_elfutils_debuginfod() {
    let Some((_dir, built)) = program() else {
        return;
    };
    let id = built.build_id.clone();
    let index = built.index_dir.clone();
    let mut elfutils = blocking(move || ElfutilsDebuginfod::start(&index));
    blocking(|| elfutils.wait_for(&id));
    let s = Symhub::start(&config_with(
        &[(
            "elfutils",
            &elfutils.url,
            "protocol = \"debuginfod\"\nconnect_timeout = \"1s\"\nfirst_byte_timeout = \"3s\"",
        )],
        "[health]\nfailure_threshold = 1\nblackout = \"30s\"",
    ));
    let exe = std::fs::read(&built.stripped).unwrap();
    let debug = std::fs::read(&built.debug).unwrap();

    // Eight clients at once on a cold cache: one upstream request.
    let path = format!("/buildid/{id}/executable");
    let gets = (0..8).map(|_| {
        let url = format!("{}{path}", s.url);
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    });
    for body in futures_util::future::join_all(gets).await {
        assert!(body == exe, "every client got the executable");
    }
    assert_eq!(
        s.metric("symhub_upstream_requests_total{upstream=\"elfutils\",status=\"200\"}")
            .await,
        1.0,
        "one upstream download for eight clients"
    );
    let r = s.get(&path).await;
    assert_eq!(r.headers()["x-cache"], "HIT");

    let (u, i) = (s.url.clone(), id.clone());
    let found = blocking(move || debuginfod_find(&[&u], &["debuginfo", &i]));
    assert!(found.ok(), "{}", found.describe());
    assert!(found.bytes() == debug);

    // Sources by their DWARF path, federated: byte-identical, and gdb lists a function of
    // the second file with its source fetched through symhub.
    for src in built.sources.clone() {
        let (u, i) = (s.url.clone(), id.clone());
        let path = src.to_str().unwrap().to_owned();
        let found = blocking(move || debuginfod_find(&[&u], &["source", &i, &path]));
        assert!(found.ok(), "{}", found.describe());
        assert_eq!(found.bytes(), std::fs::read(&src).unwrap());
    }
    let greet_c = built.sources[1].to_str().unwrap().to_owned();
    let u = s.url.clone();
    let gdb = blocking(|| {
        gdb_list_with_debuginfod(&[&u], &built.stripped, "greet_count", &built.src_dir)
    });
    assert!(
        gdb.contains("int greet_count(const char *name)")
            && gdb.contains(&format!("source file {greet_c}")),
        "gdb listed the function's source through symhub:\n{gdb}"
    );
    let r = s
        .get(&format!(
            "/buildid/{id}/source{}",
            built.sources[0].display()
        ))
        .await;
    assert_eq!(r.headers()["x-cache"], "HIT", "sources are cached too");
    assert_eq!(r.headers()["x-debuginfod-file"], "main.c");

    // A build id nobody has: 404, then remembered.
    let missing = format!("/buildid/{}/debuginfo", "ab".repeat(20));
    assert_eq!(s.get(&missing).await.status(), 404);
    assert_eq!(s.get(&missing).await.headers()["x-cache"], "NEGATIVE");

    // Loops: a request that crossed eight servers is not forwarded again.
    let other = format!("/buildid/{}/debuginfo", "cd".repeat(20));
    let before = s
        .metric("symhub_upstream_requests_total{upstream=\"elfutils\",status=\"404\"}")
        .await;
    let r = client()
        .get(format!("{}{other}", s.url))
        .header("x-forwarded-for", ["10.0.0.1"; 8].join(", "))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        s.metric("symhub_upstream_requests_total{upstream=\"elfutils\",status=\"404\"}")
            .await,
        before,
        "not forwarded"
    );

    // The upstream dies: a fast 404, then a blackout with no waiting at all.
    elfutils.kill();
    let dead = format!("/buildid/{}/debuginfo", "ef".repeat(20));
    let t = Instant::now();
    assert_eq!(s.get(&dead).await.status(), 404);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let t = Instant::now();
    let again = format!("/buildid/{}/debuginfo", "12".repeat(20));
    assert_eq!(s.get(&again).await.status(), 404);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "blackout: {:?}",
        t.elapsed()
    );
    // What was fetched is still served.
    let r = s.get(&path).await;
    assert_eq!(r.status(), 200);
}

/// One file, two spellings, across upstream kinds: a debuginfod request is answered by a
/// SymSrv/SSQP upstream that has the file under its `elf-buildid-sym` key, an SSQP request by
/// a debuginfod upstream; `DEBUGINFOD_URLS` in symhub's environment names debuginfod
/// upstreams (elfutils' convention), its `ima:` policy words skipped.
#[tokio::test]
async fn ssqp_and_debuginfod_upstreams_answer_each_others_requests() {
    let id = "0123456789abcdef0123456789abcdef01234567";
    let debug = data(4000, 21);
    let ssqp = FakeUpstream::start().await;
    ssqp.serve(
        &format!("/_.debug/elf-buildid-sym-{id}/_.debug"),
        debug.clone(),
    );
    let s = Symhub::start(&config_with(&[("ssqp", &ssqp.url, "")], ""));
    let r = s.get(&format!("/buildid/{id}/debuginfo")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-symhub-upstream"], "ssqp");
    assert_eq!(r.bytes().await.unwrap(), debug);
    // The executable has no SSQP key without its file name: never asked of SSQP upstreams.
    let before = ssqp.total_hits();
    assert_eq!(
        s.get(&format!("/buildid/{id}/executable")).await.status(),
        404
    );
    assert_eq!(ssqp.total_hits(), before);

    let d = FakeUpstream::start().await;
    d.serve(&format!("/buildid/{id}/debuginfo"), debug.clone());
    let s = Symhub::start_env(
        "upstream = []",
        // With elfutils' IMA policy words, as Fedora's /etc/debuginfod/*.urls give them.
        &[(
            "DEBUGINFOD_URLS",
            &format!("ima:enforcing {}/ ima:ignore", d.url),
        )],
    );
    let r = s
        .get(&format!("/_.debug/elf-buildid-sym-{id}/_.debug"))
        .await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert_eq!(r.headers()["x-symhub-upstream"], "debuginfod-1");
    assert_eq!(r.bytes().await.unwrap(), debug);
    // A PDB is never asked of a debuginfod server.
    let before = d.total_hits();
    let pdb = "/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.pdb";
    assert_eq!(s.get(pdb).await.status(), 404);
    assert_eq!(d.total_hits(), before);
}

/// Build ids of any length: outside SSQP's 8 to 20 bytes (mold's and `--build-id=sha256`'s
/// 32, a short `--build-id=0x…`) and padded by it (md5's 16). Binaries and debug files
/// uploaded with `sym_upload -t elf` are served to `debuginfod-find`, and a debuginfod
/// upstream's files are fetched, cached and served again as hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_ids_of_any_length_are_uploaded_served_and_federated() {
    if !elfutils_tools() {
        return;
    }
    let up = FakeUpstream::start().await;
    let s = Symhub::start(&format!(
        "{}\n{}",
        auth_config(KEY),
        config_with(&[("d", &up.url, "protocol = \"debuginfod\"")], "")
    ));
    let sha256 = "5a".repeat(31) + "01";
    // 32 bytes, 16 (md5's and uuid's length, which SSQP pads to 20) and 4.
    let md5 = "0f".repeat(15) + "e0";
    for style in [
        format!("0x{sha256}"),
        format!("0x{md5}"),
        "0xC0FFEE01".to_owned(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let built = blocking(|| build_c_program_with(dir.path(), &style));
        let id = built.build_id.clone();
        // Asked before it is uploaded: a remembered miss, which the upload must lift.
        let exe = format!("/buildid/{id}/executable");
        assert_eq!(s.get(&exe).await.status(), 404);
        assert_eq!(s.get(&exe).await.headers()["x-cache"], "NEGATIVE");
        upload_native(&s, &built.debug, "hello", &id, "DEBUG_ONLY").await;
        upload_native(&s, &built.stripped, "hello", &id, "ELF").await;
        let url = s.url.clone();
        let found = blocking(move || {
            [
                debuginfod_find(&[&url], &["debuginfo", &id]),
                debuginfod_find(&[&url], &["executable", &id]),
            ]
        });
        for (f, file) in found.iter().zip([&built.debug, &built.stripped]) {
            assert!(f.ok(), "{style}: {}\n{}", f.describe(), s.stderr());
            assert!(f.bytes() == std::fs::read(file).unwrap(), "{style}");
        }
    }
    assert_eq!(up.total_hits(), 3, "only the misses asked upstream");

    // A sha1 id may end in zero bytes (1 in 256): the upstream is asked for that id, not for
    // a shorter one its padded key could also stand for.
    for id in [
        "ab".repeat(32),
        "c0de".to_owned(),
        "0123456789abcdef0123".repeat(2),
        "0123456789abcdef0123456789abcdef01234500".to_owned(),
    ] {
        let debug = data(3000 + id.len(), 22);
        up.serve(&format!("/buildid/{id}/debuginfo"), debug.clone());
        let path = format!("/buildid/{}/debuginfo", id.to_uppercase());
        let r = s.get(&path).await;
        assert_eq!(r.status(), 200, "{id}: {}", s.stderr());
        assert_eq!(r.headers()["x-symhub-upstream"], "d");
        assert_eq!(r.bytes().await.unwrap(), debug);
        s.settle().await;
        let r = s.get(&path).await;
        assert_eq!(r.headers()["x-cache"], "HIT", "{id}");
        assert_eq!(r.bytes().await.unwrap(), debug);
    }
    // Asked by its SSQP key, whose padding hides the length, the likeliest id goes first: a
    // sha1 id with one trailing zero byte is itself, not a 19-byte id.
    let id = "fedcba9876543210fedcba9876543210fedcba00";
    let debug = data(2000, 23);
    up.serve(&format!("/buildid/{id}/debuginfo"), debug.clone());
    let r = s
        .get(&format!("/_.debug/elf-buildid-sym-{id}/_.debug"))
        .await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert_eq!(r.bytes().await.unwrap(), debug);
    // A section of a 12-byte id's debug file: the whole file is asked by that id, not by the
    // 16 bytes its padded key would suggest.
    let id = "00112233445566778899aabb";
    let elf = std::fs::read(fixtures().join("elf/hello.debug")).unwrap();
    up.serve(&format!("/buildid/{id}/debuginfo"), elf.clone());
    let r = s.get(&format!("/buildid/{id}/section/.debug_info")).await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    let parsed = symhub_core::elf::ElfFile::parse(&elf).unwrap();
    assert!(r.bytes().await.unwrap() == parsed.section(".debug_info").unwrap());
}

/// `executable` stays the runnable binary: a re-upload with the same build id (the
/// unstripped build, then the stripped release) is served whole, not cut to the new length
/// from the old file kept open; and a split debug file sent as `sym_upload -t elf` is only
/// the debuginfo, never the binary (break-it pass: gdb got a cut binary, then a debug file,
/// as the core file's executable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executable_is_the_latest_runnable_binary_uploaded() {
    let Some((_dir, built)) = program() else {
        return;
    };
    let id = built.build_id.clone();
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let exe = format!("/buildid/{id}/executable");
    upload_native(&s, &built.exe, "hello", &id, "ELF").await;
    let full = std::fs::read(&built.exe).unwrap();
    assert!(s.get(&exe).await.bytes().await.unwrap() == full);
    // The stripped release replaces it: shorter, so an old descriptor would cut the old bytes.
    upload_native(&s, &built.stripped, "hello", &id, "ELF").await;
    let stripped = std::fs::read(&built.stripped).unwrap();
    let r = s.get(&exe).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap() == stripped,
        "the new binary, whole"
    );
    // And back: longer than its record would be if the old file were read.
    upload_native(&s, &built.exe, "hello", &id, "ELF").await;
    let r = s.get(&exe).await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert!(r.bytes().await.unwrap() == full);

    // The split debug file, typed as the binary: it becomes the debuginfo and nothing else.
    upload_native(&s, &built.debug, "hello", &id, "ELF").await;
    let debug = std::fs::read(&built.debug).unwrap();
    for path in [exe.clone(), format!("/hello/elf-buildid-{id}/hello")] {
        let r = s.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.bytes().await.unwrap() == full, "{path}: still the binary");
    }
    let r = s.get(&format!("/buildid/{id}/debuginfo")).await;
    assert!(r.bytes().await.unwrap() == debug);
}
