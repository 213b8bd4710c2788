//! The symbol store and Breakpad uploads, driven the way `sym_upload` drives a server
//! (see shared/protocols/sym_upload_capture.txt), plus the code-id redirect, listing,
//! authentication and limits.

use std::time::Duration;

use crate::support::*;

const KEY: &str = "KEY123";
const HELLO: &str = "MODULE Linux x86_64 37DBF1D89E79D021896EB8F060CBFF050 hello\n\
INFO CODE_ID D8F1DB379E2179D0896EB8F060CBFF0576178C03\n\
FILE 0 /src/hello.c\n\
FUNC 1139 1c 0 add\n\
1139 14 2 0\n\
PUBLIC 1000 0 _init\n";
const HELLO_ID: &str = "37DBF1D89E79D021896EB8F060CBFF050";

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
    let id = "d8f1db379e2179d0896eb8f060cbff0576178c03";
    let elf = data(5888, 7);
    let url = s.url.clone();
    let (s_ref, elf_ref) = (&s, &elf);
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
        assert_eq!(
            check(s_ref, &mut conn, "/prefix", "hello", id).text(),
            r#"{"status": "FOUND"}"#
        );
    });
    for key in [
        format!("/prefix/hello/{id}/hello"),
        format!("/prefix/hello/elf-buildid-{id}/hello"),
        format!("/prefix/_.debug/elf-buildid-sym-{id}/_.debug"),
    ] {
        let r = s.get(&key).await;
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.bytes().await.unwrap(), elf, "{key}");
    }
    let blobs = walk(&s.data_dir.join("store/objects"));
    assert_eq!(blobs.len(), 1, "three keys, one blob");
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

#[tokio::test]
async fn api_keys_missing_wrong_or_not_configured() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let c = client();
    let post = |q: &str| c.post(format!("{}/v1/uploads:create{q}", s.url)).send();
    let r = post("").await.unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"], "unauthorized");
    assert!(v["message"].as_str().unwrap().contains("key"));
    assert_eq!(post("?key=wrong").await.unwrap().status(), 403);
    assert_eq!(post(&format!("?key={KEY}")).await.unwrap().status(), 200);
    let bearer = c
        .post(format!("{}/v1/uploads:create", s.url))
        .header("Authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let tecken = c
        .get(format!("{}/api/symbols", s.url))
        .header("Auth-Token", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(tecken.status(), 200);
    assert_eq!(
        s.get("/api/symbols").await.status(),
        401,
        "listing needs a key"
    );
    assert!(!s.stderr().contains(KEY), "keys are never logged");

    let open = Symhub::start("upstream = []\n");
    let r = client()
        .post(format!("{}/v1/uploads:create?key=anything", open.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("uploads_disabled") && text.contains("symhub key new"),
        "{text}"
    );
}

#[tokio::test]
async fn api_key_file_and_download_auth() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, "# ci\nfile-key\n").unwrap();
    let (mut child, url) = spawn_serve(
        std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--api-key-file"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg({
                let c = dir.path().join("c.toml");
                std::fs::write(
                    &c,
                    "upstream = []\n[auth]\nrequire_for_downloads = true\nrequire_for_metrics = true\n",
                )
                    .unwrap();
                c
            }),
    );
    let c = client();
    let r = c
        .post(format!("{url}/v1/uploads:create?key=file-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{url}/a.pdb/1/a.pdb")).send().await.unwrap();
    assert_eq!(r.status(), 401, "downloads need a key in this mode");
    let r = c
        .get(format!("{url}/a.pdb/1/a.pdb?key=file-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "with a key it is an ordinary miss");
    let r = c.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401, "metrics need a key in this mode");
    let r = c
        .get(format!("{url}/metrics"))
        .bearer_auth("file-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("symhub_"));
    let json = |b: bytes::Bytes| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    let open = json(
        c.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(open["status"], "ok", "load balancers still see the status");
    assert!(open.get("upstreams").is_none(), "but not the details");
    let full = json(
        c.get(format!("{url}/healthz?key=file-key"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    assert!(full["upstreams"].is_array());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A sym-upload-v1 POST of a multipart body made by [`multipart`].
async fn post_v1(s: &Symhub, content_type: String, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "------------------------ea81cd98ae960f3a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"symbol_file\"; filename=\"hello.sym\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

const V1_FIELDS: &[(&str, &str)] = &[
    ("code_file", "hello"),
    ("cpu", "x86_64"),
    ("debug_file", "hello"),
    ("debug_identifier", HELLO_ID),
    ("os", "Linux"),
    ("version", "1.2.3.4"),
];

#[tokio::test]
async fn sym_upload_v1_multipart() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = client()
        .post(format!("{}/symupload?key={KEY}", s.url))
        .header("content-type", ct.clone())
        .header("user-agent", "Breakpad/1.0 (Linux)")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.get(&format!("/hello/{HELLO_ID}/hello.sym")).await;
    assert_eq!(r.text().await.unwrap(), HELLO);

    // The fields are checked against the MODULE line the same way.
    let mut wrong = V1_FIELDS.to_vec();
    wrong[2] = ("debug_file", "other");
    let (ct, body) = multipart(&wrong, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 422);
    assert_eq!(s.get("/other/x/other.sym").await.status(), 404);
}

#[tokio::test]
async fn oversize_uploads_are_refused_without_filling_the_disk() {
    let s = Symhub::start(&format!(
        "upstream = []\n{}[upload]\nmax_size = \"1 KiB\"\n",
        auth_config(KEY)
    ));
    let big = format!("{HELLO}{}", "PUBLIC 1 0 x\n".repeat(1000));
    // v1, no Content-Length check possible inside the part: cut while streaming.
    let (ct, body) = multipart(V1_FIELDS, big.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 413);
    // v2 PUT, chunked (no Content-Length).
    let upload_url = s.create_upload(KEY).await;
    let stream = futures_util::stream::iter(
        big.clone()
            .into_bytes()
            .chunks(500)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = client()
        .put(&upload_url)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The server may answer before it has read the whole body, or cut it.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert!(walk(&s.data_dir.join("store/tmp")).is_empty());
    assert!(walk(&s.data_dir.join("store/objects")).is_empty());
    assert!(walk(&s.data_dir.join("store/uploads")).is_empty());
}

#[tokio::test]
async fn the_store_comes_before_the_cache_and_upstreams_and_is_never_evicted() {
    let up = FakeUpstream::start().await;
    let key = format!("/hello/{HELLO_ID}/hello.sym");
    up.serve(&key, "from the upstream");
    let mut s = Symhub::start(&format!(
        "{}[cache]\nmax_size = \"1 KiB\"\n{}",
        auth_config(KEY),
        config_with(&[("up", &up.url, "")], "")
    ));
    // Cached first from the upstream…
    assert_eq!(s.get(&key).await.text().await.unwrap(), "from the upstream");
    // …then uploaded: the store wins at once.
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get(&key).await.text().await.unwrap(), HELLO);
    // Fill the tiny cache past its bound; the store is not touched by eviction.
    for i in 0..5 {
        let k = format!("/f{i}.pdb/1/f{i}.pdb");
        up.serve(&k, data(900, i));
        s.get(&k).await.bytes().await.unwrap();
    }
    s.restart();
    let r = s.get(&key).await;
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), HELLO);
    assert_eq!(up.hits(&key), 1);
}

/// A download from an upstream that ends after an upload of the same key must not hide
/// the upload behind its older answer.
#[tokio::test]
async fn an_upload_during_a_download_of_the_same_key_wins() {
    let up = FakeUpstream::start().await;
    let key = format!("/hello/{HELLO_ID}/hello.sym");
    let slow = Serve::bytes("from the upstream, slowly").drip(5, Duration::from_millis(150));
    up.route(&key, Behavior::Serve(slow));
    let s = Symhub::start(&format!(
        "{}{}",
        auth_config(KEY),
        config_with(&[("up", &up.url, "")], "")
    ));
    let url = format!("{}{key}", s.url);
    let early = tokio::spawn(async move { client().get(url).send().await?.text().await });
    while up.hits(&key) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ct, body) = multipart(V1_FIELDS, HELLO.as_bytes());
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    // The client that asked first gets what it was being sent…
    assert_eq!(early.await.unwrap().unwrap(), "from the upstream, slowly");
    // …and once that download has committed, the upload is what everyone gets.
    let r = s.get(&key).await;
    assert_eq!(r.headers()["x-symhub-source"], "store");
    assert_eq!(r.text().await.unwrap(), HELLO);
}

#[tokio::test]
async fn code_id_requests_redirect_to_the_debug_id_key() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let sym = std::fs::read(fixtures().join("windows/dump_syms_regtest64.sym")).unwrap();
    let (ct, body) = multipart(
        &[
            ("debug_file", "dump_syms_regtest64.pdb"),
            ("debug_identifier", "72E103A85CB249078B76B2E7C06257B13"),
            ("code_file", "dump_syms_regtest64.exe"),
            ("os", "windows"),
            ("cpu", "x86_64"),
        ],
        &sym,
    );
    let r = post_v1(&s, ct, body).await;
    assert_eq!(r.status(), 200);
    let r = s
        .get("/dump_syms_regtest64.exe/589DFD111A000/dump_syms_regtest64.sym")
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.sym"
    );
    let r = s.get(r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(r.bytes().await.unwrap(), sym);
}

#[tokio::test]
async fn listing_and_the_upload_subcommand() {
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let symbols = fixtures().join("breakpad/symbols");
    let url = s.url.clone();
    let run = move || {
        std::process::Command::new(bin())
            .args(["upload", "--url", &url, "--key", KEY])
            .arg(&symbols)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 uploaded, 0 skipped (already there), 0 failed"),
        "{stdout}"
    );
    let out = tokio::task::spawn_blocking(run).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 uploaded, 4 skipped"), "{stdout}");

    let list: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/symbols?prefix=TEST_APP&key={KEY}"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let rows = list["symbols"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["key"],
        "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
    );
    assert_eq!(rows[0]["size"], 818134);
    assert!(rows[0]["sha256"].as_str().unwrap().len() == 64);
    assert!(rows[0]["uploaded_at"].as_str().unwrap().ends_with('Z'));
    let all: serde_json::Value = serde_json::from_slice(
        &s.get(&format!("/api/symbols?key={KEY}&limit=3"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(all["symbols"].as_array().unwrap().len(), 3);
    assert!(
        all["next"].is_string(),
        "a full page says where the next one starts"
    );
}

/// The real consumer: rust-minidump's minidump-stackwalk symbolicates a Windows minidump
/// with symbols it fetches from symhub. `scripts/test` installs the tool (and sets
/// SYMHUB_REQUIRE_TOOLS=1 so this test cannot silently skip).
#[tokio::test]
async fn minidump_stackwalk_symbolicates_with_symbols_from_symhub() {
    let tool = std::env::var("MINIDUMP_STACKWALK").unwrap_or_else(|_| "minidump-stackwalk".into());
    if std::process::Command::new(&tool)
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
            "minidump-stackwalk is not installed; scripts/test installs it"
        );
        eprintln!("SKIPPED: minidump-stackwalk not installed (run ./scripts/test)");
        return;
    }
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    let symbols = fixtures().join("breakpad/symbols");
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(["upload", "--url", &url, "--key", KEY])
            .arg(&symbols)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let dump = fixtures().join("breakpad/minidumps/minidump2.dmp");
    let url = format!("{}/", s.url);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tool)
            .arg("--symbols-url")
            .arg(&url)
            .arg("--symbols-cache")
            .arg(dir.path().join("cache"))
            .arg("--symbols-tmp")
            .arg(dir.path().join("tmp"))
            .arg(dump)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("test_app.exe!main [test_app.cc : 65 + 0x4]"),
        "{stdout}"
    );
    assert!(stdout.contains("kernel32.dll!"), "{stdout}");
    let log = s.stderr();
    assert!(log.contains("outcome=\"store\""), "{log}");
}

#[tokio::test]
async fn key_new_prints_a_key_and_the_config_line_that_accepts_it() {
    let out = std::process::Command::new(bin())
        .args(["key", "new"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("symhub_"))
        .expect("a key")
        .to_owned();
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("api_keys = "))
        .expect("a config line")
        .to_owned();
    assert!(!line.contains(&key), "the config holds a hash, not the key");
    let s = Symhub::start(&format!("upstream = []\n[auth]\n{line}\n"));
    let ok = client()
        .post(format!("{}/v1/uploads:create?key={key}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let other = client()
        .post(format!("{}/v1/uploads:create?key={key}x", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
}
