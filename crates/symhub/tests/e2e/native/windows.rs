//! A Windows build (PE + PDB, made on Linux with clang-cl and lld-link) through `symhub
//! upload`: keys as llvm-readobj and llvm-pdbutil read the files, bytes served as built, and
//! the Breakpad `.sym` made from the PDB and its image together.

use super::*;
use crate::native_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn windows_build_is_keyed_as_the_llvm_tools_read_it_and_made_into_breakpad() {
    let Some((_dir, win)) = windows_build().await else {
        return;
    };
    let s = server();

    // What each file must be stored as, from the independent tools only.
    let mut expected = Vec::new();
    for (image, pdb) in [(&win.exe, &win.pdb), (&win.dll, &win.dll_pdb)] {
        let pe = readobj_pe(image);
        let (guid, age) = pdbutil_guid_age(pdb);
        let pdb_name = file_name(pdb);
        let stem = pdb_name.trim_end_matches(".pdb");
        expected.push((
            image.clone(),
            expected_pe_key(&file_name(image), &pe),
            pdb.clone(),
            expected_pdb_key(&pdb_name, &guid, age),
            format!("{pdb_name}/{guid}{age:X}/{stem}.sym"),
            format!("MODULE windows x86_64 {guid}{age:X} {pdb_name}"),
            format!(
                "INFO CODE_ID {:08X}{:X} {}",
                pe.timestamp,
                pe.size_of_image,
                file_name(image)
            ),
        ));
    }

    let (ok, dry) = upload(&s, &["--dry-run"], &[&win.out_dir]).await;
    assert!(ok, "{dry}");
    for (_, pe_key, _, pdb_key, sym_key, ..) in &expected {
        for k in [pe_key, pdb_key, sym_key] {
            assert!(dry.contains(k.as_str()), "--dry-run lacks {k}:\n{dry}");
        }
    }
    assert_eq!(
        s.json(&format!("/api/symbols?key={KEY}")).await["symbols"],
        serde_json::json!([]),
        "a dry run stores nothing"
    );

    let (ok, out) = upload(
        &s,
        &["--product", "crash", "--version", "1.0", "--comment", "ci"],
        &[&win.out_dir],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("4 uploaded, 0 skipped"), "{out}");
    // Each pair's `.sym` is reported with both of its files, and counted once: the PE's,
    // the PDB's and the `.sym`'s key of two modules (7 before: break-it pass).
    assert!(out.contains(" failed; 6 keys,"), "{out}");
    for (image, pe_key, pdb, pdb_key, sym_key, module, code) in &expected {
        assert_served(&s, pe_key, image).await;
        assert_served(&s, pdb_key, pdb).await;
        // As VS and dotnet-symbol spell keys: all lower case.
        assert_served(&s, &pdb_key.to_lowercase(), pdb).await;
        let (status, sym) = fetch(&s, sym_key).await;
        assert_eq!(status, 200, "GET /{sym_key}");
        let sym = String::from_utf8(sym).unwrap();
        let mut lines = sym.lines();
        assert_eq!(lines.next(), Some(module.as_str()), "{sym_key}");
        assert_eq!(lines.next(), Some(code.as_str()), "{sym_key}");
        if image == &win.exe {
            assert!(sym.contains(" crash_here("), "{sym}");
            // Unwind tables from the image's .pdata, which the PDB does not have.
            assert!(sym.contains("\nSTACK CFI INIT "), "{sym}");
        }
    }

    // Nothing changed: every file is held, none is sent again, and the new run's
    // transaction still records them.
    let (ok, again) = upload(
        &s,
        &["--product", "crash", "--version", "1.1"],
        &[&win.out_dir],
    )
    .await;
    assert!(ok, "{again}");
    assert!(again.contains("0 uploaded, 4 skipped"), "{again}");
    let list = s.json(&format!("/api/transactions?key={KEY}")).await;
    let runs = list["transactions"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    for run in runs {
        // Four files and two made `.sym`s.
        assert_eq!(run["key_count"], 6, "{run}");
    }
    let log = s.stderr();
    assert!(log.contains("breakpad symbols made"), "{log}");
}
