//! Mach-O build output: a universal (x86_64 + arm64) binary linked with LLVM's ld64.lld and
//! its dSYM made by dsymutil, uploaded as an Xcode build leaves them (`m` and `m.dSYM/`).
//! Each architecture is keyed by the UUID `llvm-dwarfdump --uuid` prints, served as that
//! architecture alone (what `llvm-lipo -thin` extracts), and made into Breakpad symbols.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const SOURCE: &str = "int helper(int x) { return x * 3; }\nint main(void) { return helper(2); }\n";
const ARCHES: [&str; 2] = ["x86_64", "arm64"];

/// An LLVM tool from PATH, else from Debian's LLVM directory (llvm-lipo and ld64.lld are
/// only there). `None` when missing: the test is skipped, or fails under
/// SYMHUB_REQUIRE_TOOLS.
fn llvm_tool(name: &str) -> Option<PathBuf> {
    let found = std::iter::once(PathBuf::from(name))
        .chain(
            std::fs::read_dir("/usr/lib")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
                .map(|e| e.path().join("bin").join(name)),
        )
        .find(|p| Command::new(p).arg("--version").output().is_ok());
    if found.is_none() {
        assert!(
            std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
            "{name} is not installed; scripts/test installs Debian's clang, lld and llvm"
        );
        eprintln!("SKIPPED: {name} not installed (run ./scripts/test)");
    }
    found
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct MachOBuild {
    /// `upload/m` (universal) and `upload/m.dSYM/Contents/Resources/DWARF/m` (universal).
    upload: PathBuf,
    /// Per architecture: the UUID as llvm-dwarfdump prints it (upper case, dashed), the
    /// thin binary and the thin DWARF file.
    arches: Vec<(String, String, PathBuf, PathBuf)>,
}

fn build(dir: &Path, tools: &[PathBuf; 5]) -> MachOBuild {
    let [clang, ld64, dsymutil, lipo, dwarfdump] = tools;
    std::fs::write(dir.join("m.c"), SOURCE).unwrap();
    let upload = dir.join("upload");
    let dwarf_dir = upload.join("m.dSYM/Contents/Resources/DWARF");
    std::fs::create_dir_all(&dwarf_dir).unwrap();
    let mut arches = Vec::new();
    for arch in ARCHES {
        let (obj, bin) = (
            dir.join(format!("m_{arch}.o")),
            dir.join(format!("m_{arch}")),
        );
        run_ok(
            Command::new(clang)
                .arg(format!("--target={arch}-apple-macos11"))
                .args(["-g", "-c"])
                .arg(dir.join("m.c"))
                .arg("-o")
                .arg(&obj),
        );
        run_ok(
            Command::new(ld64)
                .args([
                    "-arch",
                    arch,
                    "-platform_version",
                    "macos",
                    "11.0",
                    "11.0",
                    "-e",
                    "_main",
                    "-o",
                ])
                .arg(&bin)
                .arg(&obj),
        );
        let dsym = dir.join(format!("m_{arch}.dSYM"));
        run_ok(Command::new(dsymutil).arg(&bin).arg("-o").arg(&dsym));
        let dwarf = dsym.join(format!("Contents/Resources/DWARF/m_{arch}"));
        let printed = run_ok(Command::new(dwarfdump).arg("--uuid").arg(&bin));
        let uuid = printed
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no UUID in {printed}"))
            .to_owned();
        arches.push((arch.to_owned(), uuid, bin, dwarf));
    }
    let thin = |i: usize| arches.iter().map(move |a| if i == 0 { &a.2 } else { &a.3 });
    run_ok(
        Command::new(lipo)
            .arg("-create")
            .args(thin(0))
            .arg("-output")
            .arg(upload.join("m")),
    );
    run_ok(
        Command::new(lipo)
            .arg("-create")
            .args(thin(1))
            .arg("-output")
            .arg(dwarf_dir.join("m")),
    );
    MachOBuild { upload, arches }
}

#[tokio::test(flavor = "multi_thread")]
async fn universal_binary_and_dsym_are_keyed_per_architecture_by_uuid() {
    let names = [
        "clang",
        "ld64.lld",
        "dsymutil",
        "llvm-lipo",
        "llvm-dwarfdump",
    ];
    let Some(tools) = names
        .iter()
        .map(|n| llvm_tool(n))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let tools: [PathBuf; 5] = tools.try_into().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let built = tokio::task::spawn_blocking(move || build(&root, &tools))
        .await
        .unwrap();
    let s = server();
    let (ok, out) = upload(&s, &[], &[&built.upload]).await;
    assert!(ok, "{out}");
    assert!(out.contains("2 uploaded"), "{out}");
    for (arch, uuid, bin, dwarf) in &built.arches {
        let hex: String = uuid.chars().filter(|c| *c != '-').collect();
        let lower = hex.to_lowercase();
        assert_served(&s, &format!("m/mach-uuid-{lower}/m"), bin).await;
        assert_served(&s, &format!("_.dwarf/mach-uuid-sym-{lower}/_.dwarf"), dwarf).await;
        let (status, sym) = fetch(&s, &format!("m/{hex}0/m.sym")).await;
        assert_eq!(status, 200, "{arch}");
        let sym = String::from_utf8(sym).unwrap();
        assert!(
            sym.starts_with(&format!("MODULE Mac {arch} {hex}0 m\n")),
            "{sym}"
        );
        assert!(sym.contains(" helper"), "{sym}");
    }
    // A dSYM's DWARF file sent as `sym_upload -t macho` (with the UUID): kept under its debug
    // key, never replacing the binary under its own (re-test pass).
    let (_, uuid, bin, dwarf) = &built.arches[0];
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    crate::debuginfod::upload_native_with(&s, KEY, dwarf, "m", &hex, "MACHO").await;
    let lower = hex.to_lowercase();
    assert_served(&s, &format!("m/mach-uuid-{lower}/m"), bin).await;
    assert_served(&s, &format!("_.dwarf/mach-uuid-sym-{lower}/_.dwarf"), dwarf).await;
}
