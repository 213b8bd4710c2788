//! The real consumer: minidump-stackwalk symbolicating a minidump with symbols uploaded to
//! and fetched from symhub.

use super::KEY;
use crate::support::*;

/// The real consumer: rust-minidump's minidump-stackwalk symbolicates a Windows minidump
/// with symbols it fetches from symhub. `scripts/test` installs the tool (and sets
/// SYMHUB_REQUIRE_TOOLS=1 so this test cannot silently skip).
#[tokio::test]
async fn minidump_stackwalk_symbolicates_with_symbols_from_symhub() {
    let Some(tool) = minidump_stackwalk() else {
        return;
    };
    let s = Symhub::start(&format!("upstream = []\n{}", auth_config(KEY)));
    upload_dir(&s.url, KEY, fixtures().join("breakpad/symbols")).await;
    let stdout = stackwalk(&tool, &format!("{}/", s.url)).await;
    assert!(
        stdout.contains("test_app.exe!main [test_app.cc : 65 + 0x4]"),
        "{stdout}"
    );
    assert!(stdout.contains("kernel32.dll!"), "{stdout}");
    let log = s.stderr();
    assert!(log.contains("outcome=\"store\""), "{log}");
}
