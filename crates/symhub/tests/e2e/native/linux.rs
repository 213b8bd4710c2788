//! A Linux build (a gcc program split into a stripped binary and its `.debug` file, as
//! distributions ship them) through `symhub upload`: keys by the build id `eu-readelf -n`
//! prints, served to SymSrv/SSQP and debuginfod clients, and a minidump of the running
//! program symbolicated by the real minidump-stackwalk with nothing but what the upload put
//! in — function names, source lines, and unwinding by the binary's call frame info.

use super::*;
use crate::native_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn linux_build_is_symbolicated_by_minidump_stackwalk_from_the_upload_alone() {
    if !native_tools() {
        return;
    }
    let Some(stackwalk) = minidump_stackwalk() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (linux, dump) = tokio::task::spawn_blocking(move || {
        let linux = build_linux_program(&root);
        let dump = write_minidump(&linux.stripped, &root.join("waiter.dmp"));
        (linux, dump)
    })
    .await
    .unwrap();
    let s = server();
    let id = &linux.build_id;

    // The debug file first: its `.sym` is made at once (lines, no unwind tables), and made
    // again, complete, when the binary arrives.
    let (ok, out) = upload(&s, &[], &[&linux.debug_file]).await;
    assert!(ok, "{out}");
    let (ok, out) = upload(&s, &[], &[&linux.stripped]).await;
    assert!(ok, "{out}");
    assert_served(
        &s,
        &format!("waiter/elf-buildid-{id}/waiter"),
        &linux.stripped,
    )
    .await;
    assert_served(
        &s,
        &format!("_.debug/elf-buildid-sym-{id}/_.debug"),
        &linux.debug_file,
    )
    .await;
    assert_served(&s, &format!("buildid/{id}/debuginfo"), &linux.debug_file).await;
    assert_served(&s, &format!("buildid/{id}/executable"), &linux.stripped).await;

    let out = {
        let (tool, url, dump) = (stackwalk.clone(), format!("{}/", s.url), dump.dump.clone());
        let cache = dir.path().join("cache");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(tool)
                .arg("--symbols-url")
                .arg(url)
                .arg("--symbols-cache")
                .arg(cache)
                .arg(dump)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let walked = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{walked}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crashed = walked.find("(crashed)").expect("a crashed thread");
    let frames: Vec<&str> = walked[crashed..]
        .lines()
        .filter(|l| {
            l.trim_start()
                .split(' ')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    assert!(frames.len() >= 3, "{walked}");
    assert!(
        frames[0].contains("waiter!inner_wait [waiter.c : "),
        "{walked}"
    );
    assert!(frames[1].contains("waiter!outer [waiter.c : "), "{walked}");
    assert!(frames[2].contains("waiter!main [waiter.c : "), "{walked}");
    // How frame 1 was found: with the binary's CFI in the `.sym`, not by frame pointer.
    let after_frame_1 = &walked[walked.find(frames[1]).unwrap()..];
    let found_by = after_frame_1
        .lines()
        .find(|l| l.contains("Found by"))
        .unwrap_or("");
    assert!(found_by.contains("call frame info"), "{walked}");
}

/// A distribution's debug package names its files by build id only
/// (`.build-id/fb/89fa….debug`): `--dry-run` says the `.sym` waits for the binary, as the
/// server does, instead of listing one under the hash's name (break-it pass).
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_of_a_build_id_named_debug_file_says_the_sym_waits_for_the_binary() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let id = "fb89faed92941c861f194450d2f07cf0b1d2caec";
    let at = dir
        .path()
        .join(format!(".build-id/{}/{}.debug", &id[..2], &id[2..]));
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::copy(fixtures().join("elf/hello.debug"), &at).unwrap();
    let (ok, dry) = upload(&s, &["--dry-run"], &[dir.path()]).await;
    assert!(ok, "{dry}");
    assert!(
        dry.contains(&format!("_.debug/elf-buildid-sym-{id}/_.debug")),
        "{dry}"
    );
    assert!(
        dry.contains("once the module's binary is uploaded"),
        "{dry}"
    );
    assert!(!dry.contains("(Breakpad, made by the server)"), "{dry}");
}
