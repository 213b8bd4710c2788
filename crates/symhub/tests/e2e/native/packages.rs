//! .NET build output: a PE with an embedded portable PDB, and NuGet packages: a `.nupkg` that ships its PDBs (which NuGet's own symbol
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

/// A minimal PE32+ image whose debug directory holds a CodeView record naming `Foo.pdb` and
/// an embedded portable PDB (`MPDB`, the size, raw deflate), as .NET's compilers write with
/// `<DebugType>embedded</DebugType>` (PE/COFF spec, "Embedded Portable PDB Debug Directory
/// Entry"). Made by hand: no .NET compiler is available here.
fn pe_with_embedded_pdb(pdb: &[u8], guid: [u8; 16]) -> Vec<u8> {
    let mut deflated =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflated.write_all(pdb).unwrap();
    let deflated = deflated.finish().unwrap();
    let (section_rva, section_at) = (0x1000u32, 0x200u32);
    let mut codeview = b"RSDS".to_vec();
    codeview.extend_from_slice(&guid);
    codeview.extend_from_slice(&1u32.to_le_bytes());
    codeview.extend_from_slice(b"Foo.pdb\0");
    let mut mpdb = b"MPDB".to_vec();
    mpdb.extend_from_slice(&(pdb.len() as u32).to_le_bytes());
    mpdb.extend_from_slice(&deflated);
    let entries_len = 2 * 28;
    let cv_at = entries_len as u32;
    let mpdb_at = cv_at + codeview.len() as u32;
    let mut section = Vec::new();
    for (typ, minor, len, at) in [
        (2u32, 0x504du16, codeview.len() as u32, cv_at),
        (17, 0x0100, mpdb.len() as u32, mpdb_at),
    ] {
        section.extend_from_slice(&0u32.to_le_bytes()); // characteristics
        section.extend_from_slice(&0x5eed_0001u32.to_le_bytes()); // time stamp
        section.extend_from_slice(&0x0100u16.to_le_bytes());
        section.extend_from_slice(&minor.to_le_bytes());
        section.extend_from_slice(&typ.to_le_bytes());
        section.extend_from_slice(&len.to_le_bytes());
        section.extend_from_slice(&(section_rva + at).to_le_bytes());
        section.extend_from_slice(&(section_at + at).to_le_bytes());
    }
    section.extend_from_slice(&codeview);
    section.extend_from_slice(&mpdb);
    let raw_len = section.len().div_ceil(0x200) * 0x200;
    let image_size = section_rva + (section.len() as u32).div_ceil(0x1000) * 0x1000;

    let mut pe = vec![0u8; section_at as usize];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    let put =
        |pe: &mut Vec<u8>, at: usize, bytes: &[u8]| pe[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut pe, 0x80, b"PE\0\0");
    // COFF header: AMD64, one section, a PE32+ optional header of 240 bytes, an executable.
    put(&mut pe, 0x84, &0x8664u16.to_le_bytes());
    put(&mut pe, 0x86, &1u16.to_le_bytes());
    put(&mut pe, 0x88, &0x5eed_0001u32.to_le_bytes());
    put(&mut pe, 0x94, &240u16.to_le_bytes());
    put(&mut pe, 0x96, &0x0022u16.to_le_bytes());
    let opt = 0x98;
    put(&mut pe, opt, &0x20bu16.to_le_bytes());
    put(&mut pe, opt + 24, &0x1_8000_0000u64.to_le_bytes());
    put(&mut pe, opt + 32, &0x1000u32.to_le_bytes());
    put(&mut pe, opt + 36, &0x200u32.to_le_bytes());
    put(&mut pe, opt + 56, &image_size.to_le_bytes());
    put(&mut pe, opt + 60, &section_at.to_le_bytes());
    put(&mut pe, opt + 68, &3u16.to_le_bytes());
    put(&mut pe, opt + 108, &16u32.to_le_bytes());
    // Data directory 6: the debug directory.
    put(&mut pe, opt + 112 + 6 * 8, &section_rva.to_le_bytes());
    put(
        &mut pe,
        opt + 112 + 6 * 8 + 4,
        &(entries_len as u32).to_le_bytes(),
    );
    let header = opt + 240;
    put(&mut pe, header, b".rdata\0\0");
    put(&mut pe, header + 8, &(section.len() as u32).to_le_bytes());
    put(&mut pe, header + 12, &section_rva.to_le_bytes());
    put(&mut pe, header + 16, &(raw_len as u32).to_le_bytes());
    put(&mut pe, header + 20, &section_at.to_le_bytes());
    put(&mut pe, header + 36, &0x4000_0040u32.to_le_bytes());
    section.resize(raw_len, 0);
    pe.extend_from_slice(&section);
    pe
}

#[tokio::test]
async fn a_portable_pdb_embedded_in_a_dll_is_unpacked_and_keyed() {
    let s = server();
    let pdb = std::fs::read(fixtures().join("dotnet/System.Threading.Thread.pdb")).unwrap();
    let guid = symhub_core::ppdb::portable_pdb_guid(&pdb).unwrap();
    let dll = pe_with_embedded_pdb(&pdb, guid);
    let (status, report) = put_file(&s, "Foo.dll", dll.clone()).await;
    assert_eq!(status, 200, "{report}");
    let key = format!(
        "Foo.pdb/{}FFFFFFFF/Foo.pdb",
        symhub_core::ppdb::guid_hex(&guid)
    );
    assert_eq!(
        report["members"][0]["objects"][0]["keys"][0],
        key.as_str(),
        "{report}"
    );
    let (code, body) = fetch(&s, &key).await;
    assert_eq!((code, body == pdb), (200, true), "{key}");
    let pe_key = report["objects"][0]["keys"][0].as_str().unwrap().to_owned();
    assert_eq!(pe_key, "Foo.dll/5EED00012000/Foo.dll");
    let (code, body) = fetch(&s, &pe_key).await;
    assert_eq!((code, body == dll), (200, true));

    // The size the image claims bounds the unpacking: a lie is a note, the image is kept.
    let mut lying = dll.clone();
    let at = lying.windows(4).position(|w| w == b"MPDB").unwrap() + 4;
    lying[at..at + 4].copy_from_slice(&16u32.to_le_bytes());
    lying[0x88..0x8c].copy_from_slice(&0x5eed_0002u32.to_le_bytes());
    let (status, report) = put_file(&s, "Bar.dll", lying).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["members"].as_array().is_none_or(|m| m.is_empty()),
        "{report}"
    );
    assert!(
        report["notes"][0].as_str().unwrap().contains("Foo.pdb"),
        "{report}"
    );
}

/// A `.nupkg` whose member unpacks to a thousand times its compressed size is a zip bomb:
/// refused whole (as `symhub package add` refuses one), and nothing in it is stored. (A
/// header that hides the size is the zip reader's to catch: that member is unreadable.) A member that merely compresses well stays welcome.
#[tokio::test]
async fn a_zip_bomb_among_build_output_is_refused_whole() {
    let s = server();
    let dll = std::fs::read(fixtures().join("dotnet/System.Threading.Thread.dll")).unwrap();
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_of(&[
        ("lib/net8.0/System.Threading.Thread.dll", dll.clone()),
        ("lib/net8.0/zeros.pdb", zeros.clone()),
    ]);
    let (status, json) = put_file(&s, "bomb.1.0.0.nupkg", bomb).await;
    assert_eq!(status, 422, "{json}");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("packages.max_ratio"), "{json}");
    let stored = s.json(&format!("/api/symbols?key={KEY}&limit=10")).await;
    assert_eq!(stored["symbols"], serde_json::json!([]), "nothing stored");
    assert!(s.objects().is_empty(), "{:?}", s.objects());
    // 64 KiB of zeros beside the DLL: small, however well it compresses.
    let fine = zip_of(&[
        ("lib/net8.0/System.Threading.Thread.dll", dll),
        ("lib/net8.0/zeros.pdb", zeros[..64 << 10].to_vec()),
    ]);
    let (status, json) = put_file(&s, "fine.1.0.0.nupkg", fine).await;
    assert_eq!(status, 200, "{json}");
}

/// A `.nupkg` naming one entry twice is refused: which of the two a zip reader takes
/// differs between readers, so what was checked need not be what is stored.
#[tokio::test]
async fn a_zip_naming_an_entry_twice_is_refused() {
    let s = server();
    let dll = std::fs::read(fixtures().join("dotnet/System.Threading.Thread.dll")).unwrap();
    // The real DLL last: this reader would take it and store it.
    let mut zip = zip_of(&[
        (
            "lib/net8.0/System.Threading.Thread.dlX",
            b"not the dll".to_vec(),
        ),
        ("lib/net8.0/System.Threading.Thread.dll", dll),
    ]);
    crate::packages::rename_entries(
        &mut zip,
        b"lib/net8.0/System.Threading.Thread.dlX",
        b"lib/net8.0/System.Threading.Thread.dll",
    );
    let (status, json) = put_file(&s, "dup.1.0.0.nupkg", zip).await;
    assert_eq!(status, 422, "{json}");
    assert!(
        json["message"].as_str().unwrap().contains("entry twice"),
        "{json}"
    );
    let stored = s.json(&format!("/api/symbols?key={KEY}&limit=10")).await;
    assert_eq!(stored["symbols"], serde_json::json!([]), "nothing stored");
}
