//! `POST /symbolicate/v5` as the Firefox Profiler and Socorro speak it to Eliot.

use serde_json::{json, Value};

use super::*;

const TEST_APP: (&str, &str) = ("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1");
const NULL_READ_AV: (&str, &str) = ("null_read_av", "7B7D1968FF0D47AE4366E9C3A7E1B6750");

fn fixture_sym(file: &str, id: &str) -> String {
    let name = file
        .strip_suffix(".pdb")
        .map_or(format!("{file}.sym"), |s| format!("{s}.sym"));
    std::fs::read_to_string(fixtures().join(format!("breakpad/symbols/{file}/{id}/{name}")))
        .unwrap()
}

/// The frame Eliot answers for `offset` in a module whose `.sym` is `sym`.
fn eliot_frame(n: usize, module: &str, sym: &str, offset: u64) -> Value {
    let (function, function_offset, file, line) = expected_at(sym, offset).unwrap();
    let mut f = json!({
        "frame": n, "module": module, "module_offset": format!("{offset:#x}"),
        "function": function, "function_offset": format!("{function_offset:#x}"),
    });
    if let Some(file) = file {
        f["file"] = json!(file);
        if let Some(line) = line.filter(|&l| l != 0) {
            f["line"] = json!(line);
        }
    }
    f
}

#[tokio::test]
async fn known_offsets_give_functions_files_and_lines() {
    let up = sym_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (app, linux) = (
        fixture_sym(TEST_APP.0, TEST_APP.1),
        fixture_sym(NULL_READ_AV.0, NULL_READ_AV.1),
    );
    // `main` of test_app (FUNC 41b0) on its line 65, and two more of each module.
    let app_offsets = [0x41fb + 2, 0x4240, 0x41b0];
    let linux_offsets = [0x1c44 + 3, 0x1cec + 0x100];
    let stack: Vec<Value> = app_offsets
        .iter()
        .map(|o| json!([0, o]))
        .chain(linux_offsets.iter().map(|o| json!([1, o])))
        .collect();
    let body = json!({"jobs": [{"memoryMap": [[TEST_APP.0, TEST_APP.1], [NULL_READ_AV.0, NULL_READ_AV.1]],
                                "stacks": [stack]}], "version": 5});
    let (status, v, headers) =
        post_json(&format!("{}/symbolicate/v5", s.url), &body.to_string()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let mut want: Vec<Value> = Vec::new();
    for (i, o) in app_offsets.iter().enumerate() {
        want.push(eliot_frame(i, TEST_APP.0, &app, *o));
    }
    for (i, o) in linux_offsets.iter().enumerate() {
        if expected_at(&linux, *o).is_some() {
            want.push(eliot_frame(
                i + app_offsets.len(),
                NULL_READ_AV.0,
                &linux,
                *o,
            ));
        }
    }
    assert_eq!(want.len(), 5, "every chosen offset is inside a FUNC");
    assert_eq!(v["results"][0]["stacks"][0], Value::Array(want));
    assert_eq!(v["results"][0]["stacks"][0][0]["function"], "main");
    assert_eq!(v["results"][0]["stacks"][0][0]["line"], 65);
    assert_eq!(
        v["results"][0]["found_modules"],
        json!({format!("{}/{}", TEST_APP.0, TEST_APP.1): true, format!("{}/{}", NULL_READ_AV.0, NULL_READ_AV.1): true})
    );
}

#[tokio::test]
async fn unknown_modules_keep_raw_offsets_and_unused_ones_are_null() {
    let up = sym_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    // Eliot's own example of a missing module and an unreferenced one, plus index -1, offset
    // -1, an empty id, and a payload without `jobs` (one job).
    let body = json!({"stacks": [[[0, 1000], [0, 1020], [-1, 4096], [3, -1], [2, 5]]],
        "memoryMap": [["testproj", "D48F191186D67E69DF025AD71FB91E1F0"], ["libc.so", "12345"],
                      ["empty.pdb", ""], [TEST_APP.0, TEST_APP.1]]});
    let (status, v, _) = post_json(&format!("{}/symbolicate/v5", s.url), &body.to_string()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"results": [{
            "found_modules": {"testproj/D48F191186D67E69DF025AD71FB91E1F0": false,
                              "libc.so/12345": null, "empty.pdb/": null,
                              format!("{}/{}", TEST_APP.0, TEST_APP.1): true},
            "stacks": [[
                {"frame": 0, "module": "testproj", "module_offset": "0x3e8"},
                {"frame": 1, "module": "testproj", "module_offset": "0x3fc"},
                {"frame": 2, "module": "<unknown>", "module_offset": "0x1000"},
                {"frame": 3, "module": TEST_APP.0, "module_offset": "-0x1"},
                {"frame": 4, "module": "empty.pdb", "module_offset": "0x5"}]]}]})
    );
}

#[tokio::test]
async fn inlined_functions_come_innermost_first() {
    // A .sym in Breakpad's inline format (dump_syms --inlines): `outer` calls `middle` at
    // line 4 of main.rs; `middle` calls `inner` at line 2 of helper.rs; the instruction is on
    // line 7 of helper.rs, inside `inner`.
    let sym = "MODULE Linux x86_64 0905AE80CEE75A33E3CAB61C274274DE0 testproj\n\
               FILE 0 /src/main.rs\nFILE 1 /src/helper.rs\n\
               INLINE_ORIGIN 0 testproj::helper::middle\nINLINE_ORIGIN 1 testproj::helper::inner\n\
               FUNC 7a40 100 0 testproj::main\n\
               INLINE 0 4 0 0 7a70 20\nINLINE 1 2 1 1 7a78 8\n\
               7a40 30 3 0\n7a70 8 1 1\n7a78 8 7 1\n7a80 40 5 0\n";
    let up = FakeUpstream::start().await;
    up.serve(
        "/testproj/0905AE80CEE75A33E3CAB61C274274DE0/testproj.sym",
        sym,
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let body = r#"{"jobs": [{"stacks": [[[0, 31354]]], "memoryMap": [["testproj", "0905AE80CEE75A33E3CAB61C274274DE0"]]}]}"#;
    let (status, v, _) = post_json(&format!("{}/symbolicate/v5", s.url), body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["results"][0]["stacks"][0][0],
        json!({"frame": 0, "module": "testproj", "module_offset": "0x7a7a",
               "function": "testproj::main", "function_offset": "0x3a",
               "file": "/src/main.rs", "line": 4,
               "inlines": [
                   {"function": "testproj::helper::inner", "file": "/src/helper.rs", "line": 7},
                   {"function": "testproj::helper::middle", "file": "/src/helper.rs", "line": 2}]})
    );
}

#[tokio::test]
async fn a_module_with_only_a_pdb_upstream_is_converted_and_found() {
    let up = pdb_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let (name, id) = PDBS[1];
    let body =
        json!({"jobs": [{"memoryMap": [[format!("{name}.pdb"), id]], "stacks": [[[0, 0x1030]]]}]});
    let (status, v, _) = post_json(&format!("{}/symbolicate/v5", s.url), &body.to_string()).await;
    assert_eq!(status, 200, "{v}");
    let frame = &v["results"][0]["stacks"][0][0];
    assert_eq!(frame["function"], "main(int, char**)", "{v}");
    assert_eq!(frame["line"], 59);
    assert_eq!(frame["function_offset"], "0x20");
    // The made .sym names the PE (INFO CODE_ID … dump_syms_regtest64.exe is not there without
    // the binary), so the module stays the debug file.
    assert_eq!(frame["module"], format!("{name}.pdb"));
}

#[tokio::test]
async fn concurrent_requests_fetch_and_parse_a_module_once() {
    let up = sym_upstream().await;
    let path = format!("/{}/{}/test_app.sym", TEST_APP.0, TEST_APP.1);
    let body = std::fs::read(fixtures().join(format!("breakpad/symbols{path}"))).unwrap();
    up.route(
        &path,
        Behavior::Serve(Serve::bytes(body).delay(std::time::Duration::from_millis(300))),
    );
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let req =
        json!({"jobs": [{"memoryMap": [[TEST_APP.0, TEST_APP.1]], "stacks": [[[0, 0x41fd]]]}]})
            .to_string();
    let url = format!("{}/symbolicate/v5", s.url);
    let answers = futures_util::future::join_all((0..16).map(|_| post_json(&url, &req))).await;
    for (status, v, _) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(v["results"][0]["stacks"][0][0]["function"], "main");
    }
    assert_eq!(up.hits(&path), 1);
}

#[tokio::test]
async fn malformed_requests_are_refused_with_a_reason() {
    let s = Symhub::start(&config_with(
        &[],
        "[symbolication]\nmax_request_size = \"2 KiB\"\nmax_modules = 3\n",
    ));
    let url = format!("{}/symbolicate/v5", s.url);
    for (body, status, message) in [
        ("not json", 400, "Payload is not valid JSON"),
        (
            r#"{"jobs": [{}]}"#,
            400,
            "job 0 is invalid: no stacks specified",
        ),
        (
            r#"{"stacks": [[[5, 1]]], "memoryMap": [["a.pdb", "00"]]}"#,
            400,
            "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules",
        ),
        (
            r#"{"stacks": [[[0, 1]]], "memoryMap": [["../x", "00"]]}"#,
            400,
            "job 0 has invalid modules: module index 0 has an invalid debug_filename",
        ),
    ] {
        let (got, v, headers) = post_json(&url, body).await;
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["title"], message);
        assert_eq!(v["message"], message);
        assert_eq!(v["error"], "invalid_request");
        assert_eq!(headers["content-type"], "application/json");
    }
    let jobs = vec![json!({"stacks": [[]], "memoryMap": []}); 11];
    let (got, v, _) = post_json(&url, &json!({ "jobs": jobs }).to_string()).await;
    assert_eq!(
        (got, v["title"].as_str().unwrap()),
        (
            400,
            "please limit number of jobs in a single request to <= 10"
        )
    );
    let (got, v, _) = post_json(
        &url,
        &json!({"stacks": [[]], "memoryMap": [["a","0"],["b","0"],["c","0"],["d","0"]]})
            .to_string(),
    )
    .await;
    assert_eq!(
        (got, v["error"].as_str().unwrap()),
        (413, "too_many_modules")
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("symbolication.max_modules"));
    let (got, v, _) = post_json(
        &url,
        &format!("{{\"stacks\": [[]], \"pad\": \"{}\"}}", "x".repeat(4096)),
    )
    .await;
    assert_eq!((got, v["error"].as_str().unwrap()), (413, "too_large"));
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("symbolication.max_request_size"));
    // GET is not the API; the browser's preflight is answered.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://profiler.firefox.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Content-Type"));
}
