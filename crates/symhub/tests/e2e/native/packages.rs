//! NuGet packages as build output: a `.nupkg` that ships its PDBs (which NuGet's own symbol
//! server ignores) is unpacked and every PDB and binary in it keyed; an SSQP package is sent
//! to the package API instead.

use std::io::Write;

use super::*;

fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        out.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(body).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_nupkg_is_unpacked_and_its_pdbs_and_dlls_keyed() {
    let s = server();
    let dotnet = fixtures().join("dotnet");
    let dll = std::fs::read(dotnet.join("System.Threading.Thread.dll")).unwrap();
    let pdb = std::fs::read(dotnet.join("System.Threading.Thread.pdb")).unwrap();
    let nupkg = zip_of(&[
        ("[Content_Types].xml", b"<Types/>".to_vec()),
        ("System.Threading.Thread.nuspec", b"<package/>".to_vec()),
        ("lib/net8.0/System.Threading.Thread.dll", dll.clone()),
        ("lib/net8.0/System.Threading.Thread.pdb", pdb.clone()),
        ("lib/net8.0/README.txt", b"not a debug file".to_vec()),
    ]);
    let (status, report) = put_file(&s, "System.Threading.Thread.8.0.0.nupkg", nupkg).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["format"], "ZIP");
    assert_eq!(report["members"].as_array().unwrap().len(), 2, "{report}");
    // The key tests/fixtures/README.md gives for the PDB, and the DLL's by its headers.
    let (code, body) = fetch(
        &s,
        "system.threading.thread.pdb/a43b38726e6a4b3cb1691f35f0d6cc48FFFFFFFF/system.threading.thread.pdb",
    )
    .await;
    assert_eq!((code, body == pdb), (200, true));
    let dll_key = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["format"] == "PE")
        .map(|m| m["objects"][0]["keys"][0].as_str().unwrap().to_owned())
        .unwrap();
    assert!(
        dll_key.starts_with("System.Threading.Thread.dll/"),
        "{dll_key}"
    );
    let (code, body) = fetch(&s, &dll_key).await;
    assert_eq!((code, body == dll), (200, true));

    let ssqp = zip_of(&[("symbol_index.json", b"[]".to_vec())]);
    let (status, answer) = put_file(&s, "symbols.zip", ssqp).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("symhub package add"),
        "{answer}"
    );
}
