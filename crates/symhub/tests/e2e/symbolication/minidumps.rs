//! `POST /api/minidump` and `symhub stackwalk` against the `minidump-stackwalk` binary, on
//! the fixture dumps with the same symbols.

use super::*;

const DUMPS: [&str; 2] = ["minidump2.dmp", "linux_null_read_av.dmp"];

fn dump(name: &str) -> std::path::PathBuf {
    fixtures().join("breakpad/minidumps").join(name)
}

async fn post_dump(url: &str, req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let _ = url;
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

fn multipart(dump: Vec<u8>) -> reqwest::multipart::Form {
    // As Breakpad's uploader sends it: annotations first, then the dump.
    reqwest::multipart::Form::new()
        .text("prod", "Test")
        .text("ver", "1.0")
        .part(
            "upload_file_minidump",
            reqwest::multipart::Part::bytes(dump).file_name("crash.dmp"),
        )
}

#[tokio::test]
async fn the_fixture_dumps_walk_as_minidump_stackwalk_walks_them() {
    let Some(tool) = minidump_stackwalk() else {
        return;
    };
    let up = sym_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for name in DUMPS {
        let theirs = stackwalk_json(&tool, &format!("{}/", s.url), &dump(name)).await;
        let url = format!("{}/api/minidump", s.url);
        let req = client()
            .post(&url)
            .multipart(multipart(std::fs::read(dump(name)).unwrap()));
        let (status, ours) = post_dump(&url, req).await;
        assert_eq!(status, 200, "{name}: {ours}");
        let (a, b) = (frames(&ours), frames(&theirs));
        assert_eq!(a, b, "{name}");
        // Symbolicated, not merely equal: the crashing frame has a function and a line.
        let crashing = ours["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
        let top = &a[crashing][0];
        assert!(!top[1].is_empty() && !top[3].is_empty(), "{name}: {top:?}");
        // The rest of the document too, but where each says it found the symbols.
        for key in [
            "crash_info",
            "system_info",
            "pid",
            "thread_count",
            "main_module",
        ] {
            assert_eq!(ours[key], theirs[key], "{name}: {key}");
        }
        let strip = |v: &serde_json::Value| {
            let mut v = v["modules"].clone();
            for m in v.as_array_mut().unwrap() {
                m["symbol_url"] = serde_json::Value::Null;
            }
            v
        };
        assert_eq!(strip(&ours), strip(&theirs), "{name}: modules");
    }
}

#[tokio::test]
async fn every_way_crash_reporters_send_a_dump_is_taken() {
    let up = sym_upstream().await;
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let url = format!("{}/api/minidump", s.url);
    let bytes = std::fs::read(dump(DUMPS[0])).unwrap();
    let walk = |v: &serde_json::Value| frames(v)[0][0].clone();
    let (status, plain) = post_dump(&url, client().post(&url).body(bytes.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(walk(&plain)[1], "`anonymous namespace'::CrashFunction");
    // Crashpad gzips the whole multipart body.
    let form = multipart(bytes.clone());
    let boundary = form.boundary().to_owned();
    let body = {
        let mut raw = Vec::new();
        raw.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"guid\"\r\n\r\nabc\r\n")
                .as_bytes(),
        );
        raw.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"d.dmp\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        raw.extend_from_slice(&bytes);
        raw.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        gz.finish().unwrap()
    };
    let req = client()
        .post(&url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("content-encoding", "gzip")
        .body(body);
    let (status, gz) = post_dump(&url, req).await;
    assert_eq!(status, 200, "{gz}");
    assert_eq!(frames(&gz), frames(&plain));
    let (status, pretty) = post_dump(
        &url,
        client().post(format!("{url}?pretty=1")).body(bytes.clone()),
    )
    .await;
    assert_eq!((status, frames(&pretty)), (200, frames(&plain)));
}

#[tokio::test]
async fn bad_dumps_are_refused_and_leave_nothing_behind() {
    let s = Symhub::start(&config_with(
        &[],
        "[symbolication]\nmax_minidump_size = \"64 KiB\"\n",
    ));
    let url = format!("{}/api/minidump", s.url);
    let form = reqwest::multipart::Form::new().text("prod", "x");
    let (status, v) = post_dump(&url, client().post(&url).multipart(form)).await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (400, "no_minidump"),
        "{v}"
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("upload_file_minidump"));
    let (status, v) = post_dump(&url, client().post(&url).body(data(5000, 3))).await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (422, "not_a_minidump"),
        "{v}"
    );
    // Every cut of a real dump is refused or walked, never a server error.
    let real = std::fs::read(dump(DUMPS[1])).unwrap();
    for len in [0, 4, 32, 100, 1000, 4000, real.len() / 2] {
        let r = client()
            .post(&url)
            .body(real[..len.min(real.len())].to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error() || r.status() == 200,
            "{len}: {}",
            r.status()
        );
    }
    let (status, v) = post_dump(&url, client().post(&url).body(data(65 * 1024, 4))).await;
    assert_eq!((status, v["error"].as_str().unwrap()), (413, "too_large"));
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("symbolication.max_minidump_size"));
    let req = client()
        .post(&url)
        .header("content-encoding", "br")
        .body(real.clone());
    let (status, _) = post_dump(&url, req).await;
    assert_eq!(status, 415);
    let leftovers: Vec<_> = s
        .files()
        .into_iter()
        .filter(|p| p.starts_with("tmp") || p.to_string_lossy().contains("/tmp/"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn symhub_stackwalk_prints_the_same_through_a_server_and_on_a_data_dir() {
    let up = sym_upstream().await;
    let config = config_with(&[("up", &up.url, "")], "");
    let s = Symhub::start(&config);
    let url = format!("{}/api/minidump", s.url);
    let bytes = std::fs::read(dump(DUMPS[1])).unwrap();
    let (_, served) = post_dump(&url, client().post(&url).body(bytes)).await;
    let (server_url, config_path, path) = (s.url.clone(), s.config_path.clone(), dump(DUMPS[1]));
    let (remote, local) = tokio::task::spawn_blocking(move || {
        let remote = std::process::Command::new(bin())
            .args(["stackwalk", "--url", &server_url])
            .arg(&path)
            .output()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let local = std::process::Command::new(bin())
            .args(["stackwalk", "--pretty", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.path())
            .arg(&path)
            .output()
            .unwrap();
        (remote, local)
    })
    .await
    .unwrap();
    for out in [&remote, &local] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(frames(&v), frames(&served));
    }
    assert!(
        frames(&served)[0][0][1] == "crash()",
        "{:?}",
        frames(&served)[0][0]
    );
    let bad = std::process::Command::new(bin())
        .args(["stackwalk", "--url", &s.url])
        .arg(fixtures().join("elf/hello"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a readable minidump"));
}
