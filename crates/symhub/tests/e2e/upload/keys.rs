//! API keys: missing, wrong or not configured, as a query parameter, a bearer token or
//! Tecken's `Auth-Token`; keys from `--api-key-file` guarding downloads and metrics; and
//! `symhub key new`.

use super::KEY;
use crate::support::*;

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

/// Debuggers that can send credentials send `Authorization: Basic` with a personal token as
/// the password: the real `curl -u` with any user name, an empty one, or the key as the user
/// name. A SymSrv client without credentials gets the Basic challenge it prompts on.
#[tokio::test]
async fn basic_credentials_carry_the_key_and_downloads_challenge_for_them() {
    let up = FakeUpstream::start().await;
    let path = "/a.pdb/0123456789ABCDEF0123456789ABCDEF1/a.pdb";
    up.serve(path, data(1000, 42));
    let s = Symhub::start(&config_with(
        &[("up", &up.url, "")],
        &format!("{}require_for_downloads = true\n", auth_config("basic-key")),
    ));
    let r = s.get(path).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"symhub\", charset=\"UTF-8\""
    );
    let url = format!("{}{path}", s.url);
    for creds in ["x:basic-key", ":basic-key", "basic-key:", "wrong:nope"] {
        let (url, creds2) = (url.clone(), creds.to_owned());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-u",
                    &creds2,
                    &url,
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        // A wrong key is a 401 with the challenge again, so a debugger prompts anew.
        let want = if creds.starts_with("wrong") {
            "401"
        } else {
            "200"
        };
        assert_eq!(code, want, "curl -u {creds}");
    }
    // Uploads take the same credentials.
    let r = client()
        .post(format!("{}/v1/uploads:create", s.url))
        .basic_auth("ci", Some("basic-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!s.stderr().contains("basic-key"), "keys are never logged");
}

/// As root, an offline command refuses a data dir another user owns (the server's): what
/// it wrote there would be root's, unreadable to the server, which then answered 404 for
/// root's uploads (re-test pass). Skipped unless the tests run as root.
#[test]
fn root_refuses_another_users_data_dir_offline() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new(bin())
        .args(["key", "list", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("65534") && err.contains("sudo -u"), "{err}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing made");
}
