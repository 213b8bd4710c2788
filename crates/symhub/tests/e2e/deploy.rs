//! The deployment files in `deploy/`: the systemd unit as `systemd-analyze` reads it, and the
//! container file's run command against the real binary.

use crate::support::*;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `systemd-analyze` is Debian's `systemd` package; `scripts/test` installs it.
fn systemd_analyze() -> bool {
    let found = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
            "systemd-analyze is not installed; scripts/test installs it (Debian: systemd)"
        );
        eprintln!("SKIPPED: systemd-analyze not installed (run ./scripts/test)");
    }
    found
}

/// The unit, with its ExecStart pointing at the binary under test (verify checks that the
/// executable exists).
fn unit_in(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(repo().join("deploy/symhub.service")).unwrap();
    let path = dir.join("symhub.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/symhub", bin())).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_clean_and_is_sandboxed() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_in(dir.path());
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    // A broken unit is not clean: the check can fail.
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &unit,
        text.replace("ProtectSystem=strict", "ProtectSystem=strikt"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    std::fs::write(&unit, &text).unwrap();
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=symhub",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "--data-dir /var/lib/symhub",
    ] {
        assert!(text.contains(directive), "{directive}");
    }
    // systemd's own exposure score of the sandbox (0 best, 10 worst).
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for symhub.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(score <= 2.0, "exposure {score}\n{report}");
}

/// The container's entry point, run as written: it serves on the address and data directory
/// the container file gives it, and its health check URL answers.
#[tokio::test]
async fn the_container_entry_point_serves_its_health_check() {
    let file = std::fs::read_to_string(repo().join("deploy/Containerfile")).unwrap();
    let entry = file
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let args: Vec<String> = serde_json::from_str(entry).unwrap();
    assert_eq!(args[0], "/usr/local/bin/symhub");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The same arguments, with a free loopback port and a temp data dir.
    let args: Vec<String> = args[1..]
        .iter()
        .map(|a| match a.as_str() {
            "0.0.0.0:8080" => "127.0.0.1:0".to_owned(),
            "/var/lib/symhub" => data.to_str().unwrap().to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let (mut child, url) = spawn_serve(std::process::Command::new(bin()).args(&args));
    let health = file
        .lines()
        .find_map(|l| l.trim().strip_prefix("CMD curl -fsS "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a curl health check");
    let path = health.strip_prefix("http://127.0.0.1:8080").unwrap();
    let r = client().get(format!("{url}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        data.join("cache").exists(),
        "its data went to the volume's directory"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
