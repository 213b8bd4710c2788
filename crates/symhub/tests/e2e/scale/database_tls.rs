//! The database connection over TLS: refused without encryption or with an untrusted
//! certificate, accepted with `database_ca_file`.

use std::path::Path;
use std::process::Command;

use super::{shared_config, sym, upload_v1, Pg, CREDS_ENV, S3};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_connection_can_require_verified_tls() {
    let Some(s3) = S3::start() else { return };
    let Some(pg) = Pg::start_with(true) else {
        return;
    };
    let ca = pg._dir.path().join("ca.pem");
    let config = |url: String, ca: Option<&Path>| {
        let base = shared_config(&pg, &s3.endpoint(), "");
        let base = base.replace(&format!("\"{}\"", pg.url()), &format!("\"{url}\""));
        match ca {
            Some(ca) => base.replace(
                "[storage.s3]",
                &format!("database_ca_file = \"{}\"\n[storage.s3]", ca.display()),
            ),
            None => base,
        }
    };
    // Refused: no TLS asked for (the server takes TLS only), or a certificate not trusted.
    for (url, ca, why) in [
        (pg.url(), Some(ca.as_path()), "no encryption"),
        (format!("{}?sslmode=require", pg.url()), None, "certificate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("symhub.toml");
        std::fs::write(&path, config(url, ca)).unwrap();
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .envs(CREDS_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {path:?}");
        eprintln!("refused as expected: {}", stderr.trim());
        assert!(
            stderr.contains("storage.database") && stderr.contains(why),
            "{stderr}"
        );
    }
    // Accepted: TLS with the server's CA.
    let s = Symhub::start_env(
        &config(format!("{}?sslmode=require", pg.url()), Some(&ca)),
        &CREDS_ENV,
    );
    let id = "C8C8C8C8C8C8C8C8C8C8C8C8C8C8C8C8A";
    let text = sym("secure", id);
    assert_eq!(upload_v1(&s, &text).await.status(), 200, "{}", s.stderr());
    assert_eq!(
        s.get(&format!("/secure/{id}/secure.sym"))
            .await
            .text()
            .await
            .unwrap(),
        text
    );
}
