//! `.sym` files made on demand from debug files that only upstreams have.

use std::collections::BTreeMap;

use super::*;

/// The fixture PE of `dump_syms_regtest64.pdb`, where an upstream has it (by code id).
const REGTEST64_EXE: &str = "/dump_syms_regtest64.exe/589DFD111A000/dump_syms_regtest64.exe";

/// An upstream with the fixture PDBs and the PE of one of them ([`REGTEST64_EXE`]).
async fn pdb_and_pe_upstream() -> FakeUpstream {
    let up = pdb_upstream().await;
    let pe = std::fs::read(fixtures().join("windows/dump_syms_regtest64.exe")).unwrap();
    up.serve(REGTEST64_EXE, pe);
    up
}

/// `FUNC`/`PUBLIC` records by address: `(size, name)`; names compared by their qualified
/// identifier, since Breakpad's Windows dump_syms and Mozilla's write return types and
/// parameter lists differently (`static int ns::i()` / `ns::i()`), and Mozilla's keeps the
/// x86 decoration of C names (`__SEH_prolog4` for `_SEH_prolog4`, `@_EH4_LocalUnwind@16`).
fn records(sym: &str, kind: &str) -> BTreeMap<u64, (String, String)> {
    let ident = |name: &str| {
        let name = name.split('(').next().unwrap().trim();
        let name = name.rsplit(' ').next().unwrap();
        let name = name.trim_start_matches(['_', '@']);
        match name.rsplit_once('@') {
            Some((n, stack)) if stack.bytes().all(|b| b.is_ascii_digit()) => n.to_owned(),
            _ => name.to_owned(),
        }
    };
    sym.lines()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
        .map(|rest| rest.strip_prefix("m ").unwrap_or(rest))
        .map(|rest| {
            let f: Vec<&str> = rest.splitn(4, ' ').collect();
            let addr = u64::from_str_radix(f[0], 16).unwrap();
            match kind {
                "FUNC" => (addr, (f[1].to_owned(), ident(f[3]))),
                _ => (addr, (String::new(), ident(&f[2..].join(" ")))),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_pdb_only_upstream_gives_the_sym_dump_syms_makes() {
    let up = pdb_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for (name, id) in PDBS {
        let path = pdb_path(name, id, &format!("{name}.sym"));
        let r = s.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        // Made here, from the PDB alone: nothing named its binary.
        assert_eq!(
            r.headers()["x-symhub-upstream"],
            "derived:dump_syms-2.3.9+symhub.2 without binary"
        );
        let made = r.text().await.unwrap();
        let want = std::fs::read_to_string(fixtures().join(format!("windows/{name}.sym"))).unwrap();
        assert_eq!(made.lines().next(), want.lines().next(), "MODULE line");
        let (made_funcs, want_funcs) = (records(&made, "FUNC"), records(&want, "FUNC"));
        assert!(want_funcs.len() > 100);
        assert_eq!(made_funcs, want_funcs, "FUNC records of {name}");
        // Every PUBLIC is there, but those inside a FUNC, which Mozilla's dump_syms leaves
        // out (the FUNC answers for those addresses).
        let made_publics = records(&made, "PUBLIC");
        let in_func = |addr: u64| {
            made_funcs
                .range(..=addr)
                .next_back()
                .is_some_and(|(start, (size, _))| {
                    addr < start + u64::from_str_radix(size, 16).unwrap()
                })
        };
        let mut kept = 0;
        for (addr, public) in records(&want, "PUBLIC") {
            if !in_func(addr) {
                assert_eq!(
                    made_publics.get(&addr),
                    Some(&public),
                    "PUBLIC {addr:x} of {name}"
                );
                kept += 1;
            }
        }
        assert!(kept > 0, "{name}: no PUBLIC compared");
        // The upstream was asked for the .sym (none), then the PDB; once each.
        assert_eq!(up.hits(&path), 1);
        assert_eq!(up.hits(&pdb_path(name, id, &format!("{name}.pdb"))), 1);
        let again = s.get(&path).await;
        assert_eq!(again.headers()["x-cache"], "HIT");
        assert_eq!(again.text().await.unwrap(), made);
        assert_eq!(up.hits(&path), 1);
    }
    let log = s.stderr();
    assert_eq!(log.matches("made a .sym on demand").count(), 2, "{log}");
}

#[tokio::test]
async fn concurrent_requests_share_one_conversion() {
    let up = pdb_upstream().await;
    let (name, id) = PDBS[1];
    let pdb = pdb_path(name, id, &format!("{name}.pdb"));
    // A slow upstream keeps every request waiting on the same fill.
    let body = std::fs::read(fixtures().join(format!("windows/{name}.pdb"))).unwrap();
    up.route(
        &pdb,
        Behavior::Serve(Serve::bytes(body).delay(std::time::Duration::from_millis(300))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let url = format!("{}{}", s.url, pdb_path(name, id, &format!("{name}.sym")));
    let answers = futures_util::future::join_all((0..20).map(|_| {
        let url = url.clone();
        async move {
            let r = client().get(url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    }))
    .await;
    assert!(answers
        .iter()
        .all(|(status, body)| *status == 200 && *body == answers[0].1));
    assert!(answers[0]
        .1
        .starts_with(b"MODULE windows x86_64 72E103A85CB249078B76B2E7C06257B13"));
    assert_eq!(up.hits(&pdb), 1);
    assert_eq!(s.stderr().matches("made a .sym on demand").count(), 1);
}

#[tokio::test]
async fn a_file_that_cannot_be_converted_is_a_remembered_miss() {
    let up = FakeUpstream::start().await;
    let id = "0123456789ABCDEF0123456789ABCDEF1";
    // Served as a PDB, but not one.
    up.serve(&format!("/broken.pdb/{id}/broken.pdb"), data(50_000, 7));
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let sym = format!("/broken.pdb/{id}/broken.sym");
    let r = s.get(&sym).await;
    assert_eq!(r.status(), 404);
    let r = s.get(&sym).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-cache"], "NEGATIVE");
    assert_eq!(up.hits(&format!("/broken.pdb/{id}/broken.pdb")), 1);
    let log = s.stderr();
    assert!(
        log.contains("cannot make this .sym on demand") && log.contains("broken.pdb"),
        "{log}"
    );
    // Nothing to make it from: a plain miss, remembered too.
    let none = "/absent.pdb/0123456789ABCDEF0123456789ABCDEF1/absent.sym";
    assert_eq!(s.get(none).await.status(), 404);
    assert_eq!(s.get(none).await.headers()["x-cache"], "NEGATIVE");
    // Only .sym keys are made: a missing PDB stays missing.
    let pdb = "/absent2.pdb/0123456789ABCDEF0123456789ABCDEF1/absent2.pdb";
    assert_eq!(s.get(pdb).await.status(), 404);
    assert_eq!(up.hits(pdb), 1);
}

#[tokio::test]
async fn a_sym_from_another_converter_version_is_made_again() {
    let up = pdb_upstream().await;
    let (name, id) = PDBS[0];
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let mut s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let first = s.get(&sym).await.bytes().await.unwrap();
    s.settle().await;
    s.kill();
    // As if an older symhub had made it.
    let index = sql_update(
        &s.data_dir.join("cache/index.sqlite3"),
        "UPDATE cache_entries SET upstream = 'derived:dump_syms-2.0.0+symhub.0' WHERE upstream LIKE 'derived:%'",
    );
    assert_eq!(index, 1);
    s.restart();
    let r = s.get(&sym).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-cache"],
        "MISS",
        "made again, not served stale"
    );
    assert_eq!(r.bytes().await.unwrap(), first);
    // The log is appended across restarts: one conversion per run.
    assert_eq!(s.stderr().matches("made a .sym on demand").count(), 2);
    // The PDB itself was cached by the first run: the upstream was not asked again for it.
    assert_eq!(up.hits(&pdb_path(name, id, &format!("{name}.pdb"))), 1);
}

/// Runs one SQL statement on a SQLite file; the number of rows changed.
fn sql_update(db: &std::path::Path, sql: &str) -> usize {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(sql, [])
        .unwrap()
}

/// The fixture's build id, and a debuginfod upstream serving its debug file and binary.
async fn hello_debuginfod_upstream() -> (&'static str, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let build_id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    let elf = fixtures().join("elf");
    up.serve(
        &format!("/buildid/{build_id}/debuginfo"),
        std::fs::read(elf.join("hello.debug")).unwrap(),
    );
    up.serve(
        &format!("/buildid/{build_id}/executable"),
        std::fs::read(elf.join("hello")).unwrap(),
    );
    (build_id, up)
}

/// The Breakpad id of an ELF build id: its first 16 bytes as a little-endian GUID, age 0.
fn breakpad_id_of(build_id: &str) -> String {
    let b = hex::decode(build_id).unwrap();
    format!(
        "{:08X}{:04X}{:04X}{}0",
        u32::from_le_bytes(b[0..4].try_into().unwrap()),
        u16::from_le_bytes(b[4..6].try_into().unwrap()),
        u16::from_le_bytes(b[6..8].try_into().unwrap()),
        hex::encode_upper(&b[8..16])
    )
}

#[tokio::test]
async fn an_elf_sym_is_made_from_a_debuginfod_upstream_by_build_id() {
    let (build_id, up) = hello_debuginfod_upstream().await;
    let s = Symhub::start(&config_with(
        &[("d", &up.url, "protocol = \"debuginfod\"")],
        "",
    ));
    // Tecken's code-id form: the build id whole (a Breakpad id keeps only 16 of its 20 bytes).
    let r = s
        .get(&format!("/hello/{}/hello.sym", build_id.to_uppercase()))
        .await;
    assert_eq!(r.status(), 200);
    let sym = r.text().await.unwrap();
    let breakpad_id = breakpad_id_of(build_id);
    assert!(
        sym.starts_with(&format!("MODULE Linux x86_64 {breakpad_id} hello")),
        "{}",
        sym.lines().next().unwrap()
    );
    assert!(
        sym.contains(&format!("INFO CODE_ID {}", build_id.to_uppercase())),
        "{sym:.300}"
    );
    assert!(
        sym.lines()
            .any(|l| l.starts_with("FUNC") && l.ends_with(" main")),
        "{sym:.2000}"
    );
    // CFI from the executable's .eh_frame, merged with the debug file's lines.
    assert!(sym.contains("STACK CFI"), "{sym:.300}");
}

/// What minidump-stackwalk asks for an ELF module: its Breakpad id (16 of a GNU build id's
/// 20 bytes) with the whole build id as `code_id`.
#[tokio::test]
async fn an_elf_sym_asked_by_breakpad_id_is_made_from_the_build_id_the_request_names() {
    let (build_id, up) = hello_debuginfod_upstream().await;
    let s = Symhub::start(&config_with(
        &[("d", &up.url, "protocol = \"debuginfod\"")],
        "",
    ));
    let path = format!("/hello/{}/hello.sym", breakpad_id_of(build_id));
    let r = s
        .get(&format!("{path}?code_file=hello&code_id={build_id}"))
        .await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    let sym = r.text().await.unwrap();
    assert!(
        sym.starts_with(&format!(
            "MODULE Linux x86_64 {} hello",
            breakpad_id_of(build_id)
        )),
        "{sym:.200}"
    );
    assert!(
        sym.contains("STACK CFI"),
        "merged with the binary: {sym:.300}"
    );
    // Made once, then served to every request of the key.
    let r = s.get(&path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), sym);
}

#[tokio::test]
async fn minidump_stackwalk_symbolicates_windows_frames_from_an_upstream_pdb() {
    let Some(tool) = minidump_stackwalk() else {
        return;
    };
    let up = pdb_and_pe_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("regtest64.dmp");
    // 0x1030 is inside `main` (FUNC 1010 6a), on line 59 of dump_syms_regtest.cc.
    std::fs::write(&dump, regtest64_dump(0x1030)).unwrap();
    let exe = REGTEST64_EXE;
    let theirs = stackwalk_json(&tool, &format!("{}/", s.url), &dump).await;
    // minidump-stackwalk named the binary, so the .sym was made with its CFI.
    assert_eq!(up.hits(exe), 1);
    let frame = &theirs["crashing_thread"]["frames"][0];
    assert_eq!(frame["module"], "dump_syms_regtest64.exe", "{frame}");
    assert_eq!(frame["function"], "main(int, char**)", "{frame}");
    assert_eq!(frame["line"], 59, "{frame}");
    assert!(frame["file"]
        .as_str()
        .unwrap()
        .ends_with("dump_syms_regtest.cc"));
    // symhub's own stackwalk of the same dump says the same.
    let r = client()
        .post(format!("{}/api/minidump", s.url))
        .body(std::fs::read(&dump).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ours: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(frames(&ours), frames(&theirs));
}

#[tokio::test]
async fn a_pdb_sym_is_made_with_its_pe_when_the_client_names_it() {
    let up = pdb_and_pe_upstream().await;
    let exe = REGTEST64_EXE;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (name, id) = PDBS[1];
    // rust-minidump's query: the binary of the module.
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let made = s
        .get(&format!(
            "{sym}?code_file=dump_syms_regtest64.exe&code_id=589dfd111a000"
        ))
        .await
        .text()
        .await
        .unwrap();
    let want = std::fs::read_to_string(fixtures().join(format!("windows/{name}.sym"))).unwrap();
    // Breakpad's own INFO line, and CFI from the PE's unwind tables for the same functions.
    assert_eq!(made.lines().nth(1), want.lines().nth(1), "{made:.300}");
    let inits = |sym: &str| -> std::collections::BTreeSet<String> {
        sym.lines()
            .filter_map(|l| l.strip_prefix("STACK CFI INIT "))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    };
    assert!(!inits(&made).is_empty());
    assert!(
        inits(&made).is_subset(&inits(&want)),
        "CFI for functions Breakpad saw too"
    );
    assert_eq!(up.hits(exe), 1);

    // A binary of another module is not paired with the PDB.
    let up = pdb_and_pe_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (name, id) = PDBS[0];
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let r = s
        .get(&format!(
            "{sym}?code_file=dump_syms_regtest64.exe&code_id=589DFD111A000"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let made = r.text().await.unwrap();
    assert!(!made.contains("INFO CODE_ID"), "{made:.300}");
    assert!(s.stderr().contains("the named binary is not of this PDB"));
}

/// A PDB's `.sym` first asked for without its binary (a debugger, the Firefox Profiler) is
/// made from the PDB alone; a request naming a binary that is nowhere keeps that one; the
/// first request that names the binary makes it again with the PE's CFI and `INFO CODE_ID`,
/// and from then on every request gets that one, the file kept open for hits included.
#[tokio::test]
async fn a_sym_made_without_its_binary_is_made_again_once_a_request_names_it() {
    let up = pdb_and_pe_upstream().await;
    let exe = REGTEST64_EXE;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (name, id) = PDBS[1];
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let get = |path: String| {
        let s = &s;
        async move {
            let r = s.get(&path).await;
            assert_eq!(r.status(), 200, "{path}: {}", s.stderr());
            // Said by a response that made or fetched the file (not by a hit).
            let tag = r
                .headers()
                .get("x-symhub-upstream")
                .map(|v| v.to_str().unwrap().to_owned());
            (tag.unwrap_or_default(), r.text().await.unwrap())
        }
    };
    let conversions = || s.stderr().matches("made a .sym on demand").count();
    let cfi = |sym: &str| {
        sym.lines()
            .filter(|l| l.starts_with("STACK CFI INIT"))
            .count()
    };
    let (tag, alone) = get(sym.clone()).await;
    assert!(tag.ends_with(" without binary"), "{tag}");
    assert!(!alone.contains("INFO CODE_ID"), "{alone:.300}");
    assert_eq!(cfi(&alone), 0);
    assert_eq!(get(sym.clone()).await.1, alone, "a hit, its file kept open");
    // A binary that is nowhere: the one made alone stays, and is not made again.
    let nowhere = format!("{sym}?code_file=nothere.exe&code_id=DEADBEEF1000");
    assert_eq!(get(nowhere.clone()).await.1, alone);
    assert_eq!(get(nowhere).await.1, alone);
    assert_eq!(conversions(), 1, "{}", s.stderr());
    assert_eq!(up.hits(exe), 0);
    let named = format!("{sym}?code_file=dump_syms_regtest64.exe&code_id=589DFD111A000");
    let (tag, complete) = get(named.clone()).await;
    assert!(!tag.ends_with(" without binary"), "{tag}");
    assert!(complete.contains("INFO CODE_ID 589DFD111A000 dump_syms_regtest64.exe"));
    assert!(cfi(&complete) > 0);
    assert_eq!(up.hits(exe), 1);
    // Everyone gets the complete one now, and nothing is made again.
    assert_eq!(get(sym.clone()).await.1, complete);
    assert_eq!(get(named).await.1, complete);
    assert_eq!(up.hits(exe), 1);
    assert_eq!(conversions(), 2, "{}", s.stderr());
}

/// A request naming the binary that joins a conversion without it (a plain request came
/// first, its PDB still downloading) waits for that one, then makes the `.sym` with the binary:
/// a stackwalk that overlaps a debugger's request still gets the PE's CFI.
#[tokio::test]
async fn a_request_naming_the_binary_that_joins_a_conversion_without_it_gets_the_cfi() {
    let up = pdb_and_pe_upstream().await;
    let (name, id) = PDBS[1];
    let pdb = std::fs::read(fixtures().join(format!("windows/{name}.pdb"))).unwrap();
    let slow = Serve::bytes(pdb).delay(std::time::Duration::from_millis(600));
    up.route(
        &pdb_path(name, id, &format!("{name}.pdb")),
        Behavior::Serve(slow),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let plain = format!("{}{sym}", s.url);
    let first = tokio::spawn(async move { client().get(plain).send().await?.text().await });
    while up.hits(&pdb_path(name, id, &format!("{name}.pdb"))) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let named = format!("{sym}?code_file=dump_syms_regtest64.exe&code_id=589DFD111A000");
    let r = s.get_now(&named).await;
    assert_eq!(r.status(), 200);
    let complete = r.text().await.unwrap();
    assert!(
        complete.contains("INFO CODE_ID 589DFD111A000"),
        "{complete:.300}"
    );
    assert!(complete.lines().any(|l| l.starts_with("STACK CFI INIT")));
    let alone = first.await.unwrap().unwrap();
    assert!(
        !alone.contains("INFO CODE_ID"),
        "the plain request got what it started"
    );
    assert_eq!(s.stderr().matches("made a .sym on demand").count(), 2);
}

/// The right PE under another name's key (a misfiled upstream): its code id is not the one it
/// was asked by, so it does not name the module, and the `.sym` is made without it.
#[tokio::test]
async fn a_pe_under_another_key_does_not_name_the_module() {
    let up = pdb_upstream().await;
    let pe = std::fs::read(fixtures().join("windows/dump_syms_regtest64.exe")).unwrap();
    up.serve("/other.exe/DEADBEEF1000/other.exe", pe);
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (name, id) = PDBS[1];
    let sym = pdb_path(name, id, &format!("{name}.sym"));
    let r = s
        .get(&format!("{sym}?code_file=other.exe&code_id=DEADBEEF1000"))
        .await;
    assert_eq!(r.status(), 200);
    let made = r.text().await.unwrap();
    assert!(!made.contains("INFO CODE_ID"), "{made:.300}");
    assert!(s.stderr().contains("the named binary is not of this PDB"));
}

/// An ELF `.sym` made from the debug file while the binary was nowhere has no CFI: made
/// again once the binary can be had, for the first request that names the module's build
/// id, and served to everyone after (break-it pass: it stayed without CFI until evicted).
#[tokio::test]
async fn an_elf_sym_made_without_its_binary_is_made_again_once_the_binary_is_there() {
    let (build_id, up) = hello_debuginfod_upstream().await;
    let exe_path = format!("/buildid/{build_id}/executable");
    let exe = std::fs::read(fixtures().join("elf/hello")).unwrap();
    up.remove(&exe_path);
    let s = Symhub::start(&config_with(
        &[("d", &up.url, "protocol = \"debuginfod\"")],
        "[cache]\nnegative_ttl = \"300ms\"\n",
    ));
    let path = format!("/hello/{}/hello.sym", breakpad_id_of(build_id));
    let named = format!("{path}?code_file=hello&code_id={build_id}");
    let r = s.get(&named).await;
    assert_eq!(r.status(), 200, "{}", s.stderr());
    assert!(r.headers()["x-symhub-upstream"]
        .to_str()
        .unwrap()
        .ends_with("without binary"));
    assert!(!r.text().await.unwrap().contains("STACK CFI"));
    // Still nowhere: the one made without it is served, nothing is converted again.
    let r = s.get(&named).await;
    assert!(!r.text().await.unwrap().contains("STACK CFI"));

    up.serve(&exe_path, exe);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = s.get(&named).await;
    assert_eq!(r.status(), 200);
    let sym = r.text().await.unwrap();
    assert!(sym.contains("STACK CFI"), "{sym:.300}");
    assert_eq!(s.get(&path).await.text().await.unwrap(), sym);
}

/// An ELF module's `.sym` takes its CFI from the binary found by build id, whatever name the
/// binary was uploaded under (sym_upload's `-c`) and the module has at run time, for the
/// 20-byte ids a Breakpad id cannot spell and for 8-byte ones (lld's `--build-id=fast`),
/// whose 16-digit code id is also a PE's length (re-test pass: both got no CFI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elf_sym_gets_its_binary_by_build_id_whatever_its_name() {
    if !crate::elf_support::elfutils_tools() {
        return;
    }
    const KEY: &str = "sym-by-id-key";
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    for style in ["sha1", "0x0011223344556677"] {
        let dir = tempfile::tempdir().unwrap();
        let built = tokio::task::block_in_place(|| {
            crate::elf_support::build_c_program_with(dir.path(), style)
        });
        let id = built.build_id.clone();
        // Uploaded as `hello`, the name the build gave it.
        let up =
            |file, kind| crate::debuginfod::upload_native_with(&s, KEY, file, "hello", &id, kind);
        up(&built.stripped, "ELF").await;
        up(&built.debug, "DEBUG_ONLY").await;
        // Installed and crashing as `hello-1.2`.
        let bytes = hex::decode(&id).unwrap();
        let breakpad_id = symhub_core::native::elf_breakpad_id(&bytes);
        let r = s
            .get(&format!(
                "/hello-1.2/{breakpad_id}/hello-1.2.sym?code_file=hello-1.2&code_id={id}"
            ))
            .await;
        assert_eq!(r.status(), 200, "{style}: {}", s.stderr());
        let upstream = r.headers()["x-symhub-upstream"]
            .to_str()
            .unwrap()
            .to_owned();
        let sym = r.text().await.unwrap();
        assert!(!upstream.ends_with("without binary"), "{style}: {upstream}");
        assert!(sym.contains("STACK CFI"), "{style}: {sym:.300}");
        assert!(
            sym.starts_with(&format!("MODULE Linux x86_64 {breakpad_id} hello-1.2")),
            "{sym:.100}"
        );
    }
}
