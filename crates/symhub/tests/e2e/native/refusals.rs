//! What native uploads refuse, with a clear answer and nothing stored: cut copies and
//! hostile files, a PE whose PDB reference does not match the PDB uploaded beside it, and a
//! directory of ten thousand tiny files that are no debug files at all.

use super::*;
use crate::native_support::*;

async fn stored_keys(s: &Symhub) -> usize {
    s.json(&format!("/api/symbols?key={KEY}&limit=1000")).await["symbols"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn cut_and_hostile_files_are_refused_and_change_nothing() {
    let s = server();
    let fixtures = fixtures();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for f in [
        "windows/dump_syms_regtest64.exe",
        "windows/dump_syms_regtest64.pdb",
        "dotnet/System.Threading.Thread.dll",
        "elf/hello",
        "elf/hello.debug",
    ] {
        let bytes = std::fs::read(fixtures.join(f)).unwrap();
        let name = f.rsplit('/').next().unwrap().to_owned();
        for cut in [bytes.len() / 2, bytes.len() - 1, 300] {
            files.push((name.clone(), bytes[..cut].to_vec()));
        }
    }
    // Magic numbers followed by garbage, a fat Mach-O claiming 4 billion architectures, an
    // MSF superblock claiming more blocks than there are.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for magic in [
        &b"MZ"[..],
        b"\x7fELF\x02\x01\x01",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe\xff\xff\xff\xff",
        b"BSJB",
        b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0",
    ] {
        let mut f = magic.to_vec();
        f.extend_from_slice(&garbage);
        files.push(("hostile.bin".into(), f));
    }
    files.push(("empty.dll".into(), Vec::new()));
    for (name, body) in files {
        let len = body.len();
        let (status, json) = put_file(&s, &name, body).await;
        assert_eq!(status, 422, "{name} ({len} bytes): {json}");
        assert_eq!(json["error"], "not_a_debug_file", "{name}: {json}");
        assert!(!json["message"].as_str().unwrap_or("").is_empty(), "{json}");
    }
    // Names that are no file names, and a method the route does not take: JSON errors too.
    for (name, code) in [
        ("%ff", "bad_name"),
        ("x%00.pdb", "bad_request"),
        ("%20x.pdb", "bad_request"),
    ] {
        let (status, json) = put_file(&s, name, b"MODULE Linux x86_64 0 x\n".to_vec()).await;
        assert!(
            (400..500).contains(&status) && json["error"] == code,
            "{name}: {status} {json}"
        );
    }
    let resp = client()
        .get(format!("{}/api/files/x.pdb", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let json: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(json["error"], "method_not_allowed", "{json}");
    assert_eq!(stored_keys(&s).await, 0);
    // No temp file is left behind either.
    assert!(s.objects().is_empty(), "{:?}", s.objects());
}

/// The image names `crash.pdb` with one GUID; the `crash.pdb` uploaded beside it is another
/// build's. Each file is keyed by what it is: the PDB under its own GUID, nothing under the
/// image's claim, and no Breakpad file pretending they belong together.
#[tokio::test(flavor = "multi_thread")]
async fn a_pe_whose_pdb_reference_lies_pairs_with_nothing() {
    let Some((dir, win)) = windows_build().await else {
        return;
    };
    let lying = dir.path().join("lying");
    std::fs::create_dir_all(&lying).unwrap();
    std::fs::copy(&win.exe, lying.join("crash.exe")).unwrap();
    // crashlib.dll's PDB, under the name crash.exe points to.
    std::fs::copy(&win.dll_pdb, lying.join("crash.pdb")).unwrap();
    let s = server();
    let (ok, out) = upload(&s, &[], &[&lying]).await;
    assert!(ok, "{out}");

    let pe = readobj_pe(&win.exe);
    let (other_guid, other_age) = pdbutil_guid_age(&win.dll_pdb);
    assert_ne!(pe.pdb_guid, other_guid);
    assert_served(&s, &expected_pe_key("crash.exe", &pe), &win.exe).await;
    assert_served(
        &s,
        &expected_pdb_key("crash.pdb", &other_guid, other_age),
        &lying.join("crash.pdb"),
    )
    .await;
    let claimed = expected_pdb_key("crash.pdb", &pe.pdb_guid, pe.pdb_age);
    assert_eq!(fetch(&s, &claimed).await.0, 404, "{claimed}");
    let claimed_sym = format!("crash.pdb/{}{:X}/crash.sym", pe.pdb_guid, pe.pdb_age);
    assert_eq!(fetch(&s, &claimed_sym).await.0, 404, "{claimed_sym}");
    // The PDB's own `.sym` is made from it alone: it names no image.
    let own_sym = format!("crash.pdb/{other_guid}{other_age:X}/crash.sym");
    let (status, sym) = fetch(&s, &own_sym).await;
    assert_eq!(status, 200, "{own_sym}");
    let sym = String::from_utf8(sym).unwrap();
    assert!(
        !sym.contains("crash.exe"),
        "{}",
        sym.lines().take(3).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_tiny_files_are_walked_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("build");
    for d in 0..100 {
        let sub = tree.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            // Too short to claim any format (a file that does claim one and is cut short is
            // refused: see below).
            let body: &[u8] = match f % 4 {
                0 => b"MZ",
                1 => b"\x7fEL",
                2 => b"MODULE",
                _ => b"",
            };
            std::fs::write(sub.join(format!("f{f:03}.dll")), body).unwrap();
        }
    }
    let real = fixtures().join("elf/hello.debug");
    std::fs::copy(&real, tree.join("hello.debug")).unwrap();
    let s = server();
    let started = std::time::Instant::now();
    let (ok, out) = upload(&s, &[], &[&tree]).await;
    eprintln!("10,001 files walked in {:?}", started.elapsed());
    assert!(ok, "{out}");
    let summary = out
        .lines()
        .rev()
        .find(|l| l.contains(" uploaded, "))
        .unwrap_or("");
    assert!(summary.starts_with("1 uploaded, 0 skipped"), "{summary}");
    assert!(summary.contains("10000 not debug files"), "{summary}");
    assert_eq!(
        stored_keys(&s).await,
        2,
        "the .debug file and its made .sym"
    );
}

/// A build directory with a cut PDB and a cut PE beside a good file: the good one is stored,
/// the others are named as refused, and the run fails (a CI job must not pass while
/// shipping a broken PDB).
#[tokio::test(flavor = "multi_thread")]
async fn the_client_names_cut_debug_files_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let windows = fixtures().join("windows");
    let pdb = std::fs::read(windows.join("dump_syms_regtest64.pdb")).unwrap();
    let exe = std::fs::read(windows.join("dump_syms_regtest64.exe")).unwrap();
    std::fs::write(dir.path().join("App.pdb"), &pdb[..pdb.len() * 9 / 10]).unwrap();
    std::fs::write(dir.path().join("App.exe"), &exe[..exe.len() / 2]).unwrap();
    std::fs::copy(fixtures().join("elf/hello"), dir.path().join("hello")).unwrap();
    let s = server();
    let (ok, out) = upload(&s, &[], &[dir.path()]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("REFUSED") && out.contains("App.pdb") && out.contains("App.exe"),
        "{out}"
    );
    assert!(
        out.contains("1 uploaded") && out.contains("2 refused"),
        "{out}"
    );
    let (ok, dry) = upload(&s, &["--dry-run"], &[dir.path()]).await;
    assert!(!ok && dry.contains("2 refused"), "{dry}");
}
