//! The real consumer: minidump-stackwalk symbolicating a minidump with symbols uploaded to
//! and fetched from symhub.

use super::KEY;
use crate::support::*;

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
