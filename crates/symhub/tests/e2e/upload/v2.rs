//! sym-upload-v2 sessions, byte for byte as `sym_upload` sends them on one keep-alive
//! connection (checkStatus, create, chunked PUT, complete), behind a path prefix, for
//! native ELF files, and refused; upload tokens and the bound on open sessions.

use std::time::Duration;

use super::{HELLO, HELLO_ID, KEY};
use crate::support::*;

fn host(s: &Symhub) -> String {
    s.url.strip_prefix("http://").unwrap().to_owned()
}

fn check(s: &Symhub, conn: &mut RawConn, prefix: &str, file: &str, id: &str) -> RawResponse {
    let req = format!(
        "GET {prefix}/v1/symbols/{file}/{id}:checkStatus?key={KEY} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\r\n",
        host(s)
    );
    conn.send(req.as_bytes())
}

/// create → PUT (chunked) → complete, exactly as sym_upload sends them; returns the
/// complete response.
/// One native upload on a connection of its own (`-t <kind> -c <file> -i <id>`): the
/// complete's answer. For multi-threaded runtimes (it blocks in place).
fn send_native(s: &Symhub, bytes: &[u8], file: &str, id: &str, kind: &str) -> String {
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&s.url);
        upload_v2(s, &mut conn, "", bytes, &complete_body(file, id, kind)).text()
    })
}

fn upload_v2(
    s: &Symhub,
    conn: &mut RawConn,
    prefix: &str,
    body: &[u8],
    complete: &str,
) -> RawResponse {
    let h = host(s);
    let create = conn.send(
        format!(
            "POST {prefix}/v1/uploads:create?key={KEY} HTTP/1.1\r\nHost: {h}\r\nAccept: */*\r\n\
             Content-Length: 0\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        .as_bytes(),
    );
    let text = create.text();
    // The client's own regexes, one space after the colon.
    let url = text
        .split("\"uploadUrl\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let upload_key = text
        .split("\"uploadKey\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let path = url
        .strip_prefix(&format!("http://{h}"))
        .expect("the upload URL points at symhub");
    let mut put = format!(
        "PUT {path} HTTP/1.1\r\nHost: {h}\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    put.extend(chunked(body));
    let put = conn.send(&put);
    assert_eq!(put.status, 200, "exactly 200: {}", put.text());
    conn.send(
        format!(
            "POST {prefix}/v1/uploads/{upload_key}:complete?key={KEY} HTTP/1.1\r\nHost: {h}\r\nAccept: */*\r\n\
             Content-Type: application/son\r\nContent-Length: {}\r\n\r\n{complete}",
            complete.len()
        )
        .as_bytes(),
    )
}

fn complete_body(file: &str, id: &str, kind: &str) -> String {
    format!("{{ symbol_id: {{debug_file: \"{file}\", debug_id: \"{id}\" }}, symbol_upload_type: \"{kind}\" }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sym_upload_v2_sequence_as_captured() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let conn_s = s.url.clone();
    let s_ref = &s;
    let done = tokio::task::block_in_place(|| {
        // All four requests on one keep-alive connection, as libcurl sends them.
        let mut conn = RawConn::open(&conn_s);
        let r = check(s_ref, &mut conn, "", "hello", HELLO_ID);
        assert_eq!(r.text(), r#"{"status": "MISSING"}"#);
        let r = upload_v2(
            s_ref,
            &mut conn,
            "",
            HELLO.as_bytes(),
            &complete_body("hello", HELLO_ID, "BREAKPAD"),
        );
        assert_eq!(r.text(), r#"{"result": "OK"}"#);
        let r = check(s_ref, &mut conn, "", "hello", HELLO_ID);
        assert_eq!(r.text(), r#"{"status": "FOUND"}"#);
        // `-f`: the same bytes again.
        let r = upload_v2(
            s_ref,
            &mut conn,
            "",
            HELLO.as_bytes(),
            &complete_body("hello", HELLO_ID, "BREAKPAD"),
        );
        assert_eq!(r.text(), r#"{"result": "DUPLICATE_DATA"}"#);
        true
    });
    assert!(done);
    let r = s
        .get(&format!(
            "/hello/{HELLO_ID}/hello.sym?code_file=hello&code_id=x"
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), HELLO);
    // Case variants, as for any key.
    let r = s
        .get(&format!("/HELLO/{}/Hello.SYM", HELLO_ID.to_lowercase()))
        .await;
    assert_eq!(r.status(), 200);
    // The unprefixed protocol paths work too.
    let r = s
        .get(&format!("/symbols/hello/{HELLO_ID}:checkStatus?key={KEY}"))
        .await;
    assert_eq!(r.text().await.unwrap(), r#"{"status": "FOUND"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_behind_a_path_prefix_and_native_elf_uploads() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[server]\npath_prefix = \"/prefix\"\n",
        auth_config(KEY)
    ));
    // A real debug file: its own build id is checked against the claim.
    let id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    let elf = std::fs::read(fixtures().join("elf/hello.debug")).unwrap();
    let exe = std::fs::read(fixtures().join("elf/hello")).unwrap();
    let url = s.url.clone();
    let (s_ref, elf_ref, exe_ref) = (&s, &elf, &exe);
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&url);
        assert_eq!(
            check(s_ref, &mut conn, "/prefix", "hello", id).text(),
            r#"{"status": "MISSING"}"#
        );
        let r = upload_v2(
            s_ref,
            &mut conn,
            "/prefix",
            elf_ref,
            &complete_body("hello", id, "ELF"),
        );
        assert_eq!(r.text(), r#"{"result": "OK"}"#);
        // The debug file alone: FOUND would make sym_upload skip the stripped binary that
        // the README's next command sends (checkStatus does not say which kind).
        assert_eq!(
            check(s_ref, &mut conn, "/prefix", "hello", id).text(),
            r#"{"status": "MISSING"}"#
        );
    });
    // A split debug file (`.text` without bytes) sent as `-t elf` is the debuginfo only:
    // never the binary gdb and perf would get as the executable.
    let debug_key = format!("/prefix/_.debug/elf-buildid-sym-{id}/_.debug");
    let r = s.get(&debug_key).await;
    assert_eq!(r.status(), 200, "{debug_key}");
    assert_eq!(r.bytes().await.unwrap(), elf, "{debug_key}");
    let binary_keys = [
        format!("/prefix/hello/{id}/hello"),
        format!("/prefix/hello/elf-buildid-{id}/hello"),
    ];
    for key in &binary_keys {
        assert_eq!(s.get(key).await.status(), 404, "{key}");
    }
    // Then the stripped binary: now the module needs nothing more.
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&url);
        let body = complete_body("hello", id, "ELF");
        let r = upload_v2(s_ref, &mut conn, "/prefix", exe_ref, &body);
        assert_eq!(r.text(), r#"{"result": "OK"}"#);
        assert_eq!(
            check(s_ref, &mut conn, "/prefix", "hello", id).text(),
            r#"{"status": "FOUND"}"#
        );
    });
    for key in &binary_keys {
        let r = s.get(key).await;
        assert_eq!(r.status(), 200, "{key}");
        assert!(r.bytes().await.unwrap() == exe, "{key}");
    }
    // A GUID with its dashes, as some tools print it: keyed without them.
    let pdb = std::fs::read(fixtures().join("windows/dump_syms_regtest64.pdb")).unwrap();
    let (s_ref, pdb_ref) = (&s, &pdb);
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&url);
        let guid = "72E103A8-5CB2-4907-8B76-B2E7C06257B1-3";
        let body = complete_body("dump_syms_regtest64.pdb", guid, "PDB");
        let r = upload_v2(s_ref, &mut conn, "/prefix", pdb_ref, &body);
        assert_eq!(r.text(), r#"{"result": "OK"}"#);
    });
    let key =
        "/prefix/dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.pdb";
    let r = s.get(key).await;
    assert_eq!(r.status(), 200, "{key}");
    assert!(r.bytes().await.unwrap() == pdb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_mismatch_unparsable_file_and_unknown_upload_are_refused_with_nothing_stored() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let url = s.url.clone();
    let s_ref = &s;
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&url);
        let r = upload_v2(
            s_ref,
            &mut conn,
            "",
            HELLO.as_bytes(),
            &complete_body("other", HELLO_ID, "BREAKPAD"),
        );
        assert_eq!(r.status, 422);
        assert!(
            r.text().contains(r#""error": "module_mismatch""#),
            "{}",
            r.text()
        );
        let r = upload_v2(
            s_ref,
            &mut conn,
            "",
            HELLO.as_bytes(),
            &complete_body("hello", "0000", "BREAKPAD"),
        );
        assert_eq!(r.status, 422);
        let r = upload_v2(
            s_ref,
            &mut conn,
            "",
            b"\x7fELF not a sym file",
            &complete_body("hello", HELLO_ID, "BREAKPAD"),
        );
        assert_eq!(r.status, 422);
        assert!(r.text().contains("not_a_symbol_file"), "{}", r.text());
        // `sym_upload -t`: a text file claimed to be an ELF, and a real ELF claimed under
        // another build id, would be served to debuggers as that build id's files.
        let elf = std::fs::read(fixtures().join("elf/hello.debug")).unwrap();
        // And a stripped binary claimed to be a debug-only file.
        let stripped = std::fs::read(fixtures().join("elf/hello")).unwrap();
        let other = "d8f1db379e2179d0896eb8f060cbff0576178c03";
        let build_id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
        for (what, bytes, id, kind) in [
            ("text as ELF", HELLO.as_bytes(), other, "ELF"),
            ("another build id", &elf[..], other, "ELF"),
            ("no debug info", &stripped[..], build_id, "DEBUG_ONLY"),
        ] {
            let r = upload_v2(
                s_ref,
                &mut conn,
                "",
                bytes,
                &complete_body("hello", id, kind),
            );
            assert_eq!(r.status, 422, "{what}: {}", r.text());
            assert!(
                r.text().contains("not_a_debug_file"),
                "{what}: {}",
                r.text()
            );
        }
        let r = upload_v2(s_ref, &mut conn, "", HELLO.as_bytes(), "{ not even close");
        assert_eq!(r.status, 422);
        let h = host(s_ref);
        let body = complete_body("hello", HELLO_ID, "BREAKPAD");
        let r = conn.send(
            format!(
                "POST /v1/uploads/0123456789abcdef:complete?key={KEY} HTTP/1.1\r\nHost: {h}\r\n\
                 Content-Type: application/son\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 404);
        assert!(
            r.text().contains(r#""error": "unknown_upload""#),
            "{}",
            r.text()
        );
        assert_eq!(
            check(s_ref, &mut conn, "", "hello", HELLO_ID).text(),
            r#"{"status": "MISSING"}"#
        );
    });
    assert!(walk(&s.data_dir.join("store/objects")).is_empty());
    // Refused completions end their session and delete its file; only the session whose
    // complete body could not even be read stays, for a retry, until it expires.
    assert_eq!(walk(&s.data_dir.join("store/uploads")).len(), 1);
    assert_eq!(
        s.get(&format!("/hello/{HELLO_ID}/hello.sym"))
            .await
            .status(),
        404
    );
}

/// A `-t dwp` names the binary (`-c hello`) but is not it: kept under `hello.dwp/<id>/
/// hello.dwp`, never replacing the binary's `hello/<id>/hello` (re-test pass: a dwp, like a
/// dSYM, took the binary's key), and counts for nothing in checkStatus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dwp_never_takes_the_binarys_key() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    let exe = std::fs::read(fixtures().join("elf/hello")).unwrap();
    let dwp = b"a dwp file: no id of its own to check".to_vec();
    let url = s.url.clone();
    let (s_ref, exe_ref, dwp_ref) = (&s, &exe, &dwp);
    tokio::task::block_in_place(|| {
        let mut conn = RawConn::open(&url);
        for (bytes, kind) in [(exe_ref, "ELF"), (dwp_ref, "DWP")] {
            let body = complete_body("hello", id, kind);
            let r = upload_v2(s_ref, &mut conn, "", bytes, &body);
            assert_eq!(r.text(), r#"{"result": "OK"}"#, "{kind}");
        }
        assert_eq!(
            check(s_ref, &mut conn, "", "hello", id).text(),
            r#"{"status": "MISSING"}"#,
            "a dwp is not the debug file, which must still come"
        );
    });
    let r = s.get(&format!("/hello/{id}/hello")).await;
    assert!(r.bytes().await.unwrap() == exe, "the binary kept its key");
    let r = s.get(&format!("/hello.dwp/{id}/hello.dwp")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == dwp);
}

/// A debug file whose claimed id does not spell its debug key (here the Breakpad id that
/// sym_upload's help calls the debug id) would land on the binary's `<file>/<id>/<file>`:
/// refused, naming the id it wants, and the binary stays (re-test pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_file_is_never_kept_under_the_binarys_key() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    let breakpad_id = symhub_core::native::elf_breakpad_id(&hex::decode(id).unwrap());
    let exe = std::fs::read(fixtures().join("elf/hello")).unwrap();
    let debug = std::fs::read(fixtures().join("elf/hello.debug")).unwrap();
    let ok = r#"{"result": "OK"}"#;
    assert_eq!(send_native(&s, &exe, "hello", &breakpad_id, "ELF"), ok);
    for kind in ["DEBUG_ONLY", "ELF"] {
        let text = send_native(&s, &debug, "hello", &breakpad_id, kind);
        assert!(text.contains("build id"), "{kind}: {text}");
        let r = s.get(&format!("/hello/{breakpad_id}/hello")).await;
        assert!(r.bytes().await.unwrap() == exe, "{kind}: the binary stays");
    }
}

#[tokio::test]
async fn upload_tokens_are_single_use_and_expire() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[upload]\nsession_ttl = \"1s\"\n",
        auth_config(KEY)
    ));
    let c = client();
    let url = s.create_upload(KEY).await;
    assert_eq!(c.put(&url).body(HELLO).send().await.unwrap().status(), 200);
    let again = c.put(&url).body(HELLO).send().await.unwrap();
    assert_eq!(again.status(), 403, "a used token is refused");
    let forged = format!("{}0", &url[..url.len() - 1]);
    assert_eq!(
        c.put(&forged).body(HELLO).send().await.unwrap().status(),
        403
    );

    let late = s.create_upload(KEY).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = c.put(&late).body(HELLO).send().await.unwrap();
    assert_eq!(r.status(), 403, "an expired token is refused");
    assert!(walk(&s.data_dir.join("store/tmp")).is_empty());
}

#[tokio::test]
async fn open_sessions_are_bounded() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[upload]\nmax_sessions = 2\n",
        auth_config(KEY)
    ));
    let create = || {
        client()
            .post(format!("{}/v1/uploads:create?key={KEY}", s.url))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 200);
    assert_eq!(create().await.unwrap().status(), 200);
    let r = create().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("too_many_sessions"));
}
