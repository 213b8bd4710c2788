//! Native uploads over a build's life: a `.sym` made from two runs' files survives the
//! deletion of either run, and so does one a `--force` re-run sent the files of; build ids of every length gcc and lld write; a `-g`-less split
//! debug file; a PE and its PDB named apart (as cargo names them).

use std::process::Command;

use super::*;
use crate::elf_support::run as run_tool;

async fn delete_transaction(s: &Symhub, id: i64) {
    let resp = client()
        .delete(format!("{}/api/transactions/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn transaction_id(out: &str) -> i64 {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("transaction ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no transaction in {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_made_sym_outlives_the_deletion_of_either_run_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let (debug_dir, bin_dir) = (dir.path().join("dbg"), dir.path().join("bin"));
    std::fs::create_dir_all(&debug_dir).unwrap();
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::copy(
        fixtures().join("elf/hello.debug"),
        debug_dir.join("hello.debug"),
    )
    .unwrap();
    std::fs::copy(fixtures().join("elf/hello"), bin_dir.join("hello")).unwrap();
    let s = server();
    let (ok, first) = upload(
        &s,
        &["--product", "pair", "--version", "dbg"],
        &[&debug_dir],
    )
    .await;
    assert!(ok, "{first}");
    let (ok, second) = upload(&s, &["--product", "pair", "--version", "bin"], &[&bin_dir]).await;
    assert!(ok, "{second}");
    let sym = "hello/EDFA89FB9492861C1F194450D2F07CF00/hello.sym";
    let (status, complete) = fetch(&s, sym).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&complete).contains("\nSTACK CFI"),
        "made from both"
    );
    // The run that made it last goes; the debug file's run still holds it.
    delete_transaction(&s, transaction_id(&second)).await;
    let (status, body) = fetch(&s, sym).await;
    assert_eq!((status, body == complete), (200, true), "{sym}");
    assert_eq!(
        fetch(
            &s,
            "hello/elf-buildid-fb89faed92941c861f194450d2f07cf0b1d2caec/hello"
        )
        .await
        .0,
        404
    );
    delete_transaction(&s, transaction_id(&first)).await;
    assert_eq!(fetch(&s, sym).await.0, 404, "nothing holds it any more");
}

/// Builds `src` into `out/<name>` with `compiler` and its flags, then splits it as
/// distributions do: `objcopy --only-keep-debug` into `out/<name>.debug`, and `strip` with
/// `strip_flag` in place. Returns the binary and the debug file.
fn split_build(
    out: &std::path::Path,
    name: &str,
    (compiler, flags): (&str, &[&str]),
    strip_flag: &str,
    src: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(out).unwrap();
    let (bin, debug) = (out.join(name), out.join(format!("{name}.debug")));
    run_tool(
        Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(src),
    );
    run_tool(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&bin)
            .arg(&debug),
    );
    run_tool(Command::new("strip").arg(strip_flag).arg(&bin));
    (bin, debug)
}

#[tokio::test(flavor = "multi_thread")]
async fn build_ids_of_every_length_and_a_split_file_without_dwarf() {
    if !crate::native_support::native_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let s = server();
    // What sha256 would give (mold's default, 32 bytes), and an id shorter than SSQP keys.
    let (sha256, short) = (format!("0x{}", "7e".repeat(32)), "0x0badcafe");
    for (style, bytes) in [
        ("sha1", 20),
        ("md5", 16),
        ("fast", 8),
        (sha256.as_str(), 32),
        (short, 4),
    ] {
        let linker = if style == "fast" {
            "-fuse-ld=lld"
        } else {
            "-fuse-ld=bfd"
        };
        let build_id = format!("-Wl,--build-id={style}");
        let out = dir.path().join(&style[..style.len().min(8)]);
        let (bin, debug) = split_build(
            &out,
            "p",
            ("clang", &["-g", linker, &build_id]),
            "--strip-debug",
            &src,
        );
        let id = crate::elf_support::readelf_build_id(&bin);
        assert_eq!(id.len(), bytes * 2, "{style}");
        let (ok, text) = upload(&s, &[], &[&out]).await;
        assert!(ok, "{text}");
        assert_served(&s, &format!("buildid/{id}/executable"), &bin).await;
        assert_served(&s, &format!("buildid/{id}/debuginfo"), &debug).await;
    }
    // Built without -g: its "debug file" has neither code nor DWARF, and is not the program.
    let out = dir.path().join("nog");
    let (bin, debug) = split_build(
        &out,
        "nog",
        ("gcc", &["-O1", "-Wl,--build-id"]),
        "--strip-all",
        &src,
    );
    let (status, answer) = put_file(&s, "nog.debug", std::fs::read(&debug).unwrap()).await;
    assert_eq!(status, 422, "{answer}");
    let (ok, text) = upload(&s, &[], &[&bin]).await;
    assert!(ok, "{text}");
    let id = crate::elf_support::readelf_build_id(&bin);
    assert_served(&s, &format!("buildid/{id}/executable"), &bin).await;
}

/// cargo's names: `my-app.exe` beside `my_app.pdb`. The `.sym` made from both names the
/// image as it is called, for code-id lookups.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_and_its_pdb_named_apart_keep_their_names() {
    let Some((dir, _)) = windows_build().await else {
        return;
    };
    let out = dir.path().join("apart");
    std::fs::create_dir_all(&out).unwrap();
    let src = out.join("m.c");
    std::fs::write(&src, "int main(void) { return 7; }\n").unwrap();
    run_tool(Command::new("clang").current_dir(&out).args([
        "--driver-mode=cl",
        "--target=x86_64-pc-windows-msvc",
        "/c",
        "/Z7",
        "/GS-",
        "--",
        "m.c",
    ]));
    run_tool(Command::new("lld-link").current_dir(&out).args([
        "/nodefaultlib",
        "/entry:main",
        "/subsystem:console",
        "/debug",
        "/out:my-app.exe",
        "/pdb:my_app.pdb",
        "m.obj",
    ]));
    std::fs::remove_file(out.join("m.obj")).unwrap();
    let s = server();
    let (ok, text) = upload(&s, &[], &[&out]).await;
    assert!(ok, "{text}");
    let pe = crate::native_support::readobj_pe(&out.join("my-app.exe"));
    let (guid, age) = crate::native_support::pdbutil_guid_age(&out.join("my_app.pdb"));
    let (status, sym) = fetch(&s, &format!("my_app.pdb/{guid}{age:X}/my_app.sym")).await;
    assert_eq!(status, 200);
    let second = String::from_utf8_lossy(&sym)
        .lines()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        second,
        format!(
            "INFO CODE_ID {:08X}{:X} my-app.exe",
            pe.timestamp, pe.size_of_image
        )
    );
}

/// A release uploaded again with `--force` sends files the store already holds: the `.sym`
/// an earlier run made from them is this run's too, so deleting the earlier run keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_rerun_keeps_the_sym_an_earlier_run_made() {
    let dir = tempfile::tempdir().unwrap();
    let name = "dump_syms_regtest64.pdb";
    std::fs::copy(fixtures().join("windows").join(name), dir.path().join(name)).unwrap();
    // Without conversions on demand, a `.sym` the store lost would stay lost.
    let s = Symhub::start(&format!(
        "upstream = []\n{}[symbolication]\non_demand = false\n",
        auth_config(KEY)
    ));
    let (ok, first) = upload(&s, &["--product", "app", "--version", "2"], &[dir.path()]).await;
    assert!(ok, "{first}");
    let (ok, again) = upload(
        &s,
        &["--product", "app", "--version", "3", "--force"],
        &[dir.path()],
    )
    .await;
    assert!(ok, "{again}");
    let sym = "dump_syms_regtest64.pdb/72E103A85CB249078B76B2E7C06257B13/dump_syms_regtest64.sym";
    let (status, made) = fetch(&s, sym).await;
    assert_eq!(status, 200);
    delete_transaction(&s, transaction_id(&first)).await;
    assert_eq!(fetch(&s, sym).await, (200, made), "{sym}");
    delete_transaction(&s, transaction_id(&again)).await;
    assert_eq!(fetch(&s, sym).await.0, 404, "nothing holds it any more");
}
