//! Failing reproductions found by trying to break symbolication (branch `break-symbolicate`).

use super::*;

/// The fixture PDB with its age (PDB info stream and DBI stream, offset 8 of each) set to
/// `age`: what an incrementally relinked PDB looks like. Its Breakpad id is the GUID followed
/// by the age in unpadded hex, so an age of 16 or more gives an id of 34+ digits.
fn pdb_with_age(age: u32) -> Vec<u8> {
    let mut d = std::fs::read(fixtures().join("windows/dump_syms_regtest.pdb")).unwrap();
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let (bs, dir_bytes, map_block) = (u32_at(&d, 32), u32_at(&d, 44), u32_at(&d, 52));
    let dir: Vec<u8> = (0..dir_bytes.div_ceil(bs))
        .flat_map(|i| {
            let b = u32_at(&d, map_block * bs + 4 * i);
            d[b * bs..(b + 1) * bs].to_vec()
        })
        .collect();
    let streams = u32_at(&dir, 0);
    let sizes: Vec<usize> = (0..streams).map(|i| u32_at(&dir, 4 + 4 * i)).collect();
    let mut at = 4 + 4 * streams;
    let mut first_block = Vec::new();
    for s in &sizes {
        let n = if *s == 0xffff_ffff { 0 } else { s.div_ceil(bs) };
        first_block.push(if n > 0 { u32_at(&dir, at) } else { 0 });
        at += 4 * n;
    }
    for stream in [1, 3] {
        let o = first_block[stream] * bs + 8;
        assert_eq!(u32_at(&d, o), 1, "the fixture's age");
        d[o..o + 4].copy_from_slice(&age.to_le_bytes());
    }
    d
}

/// A PDB whose age is 16 or more has a 34-digit Breakpad id (`<GUID>10`); `recipes()` only
/// takes 33-digit ids, so its `.sym` is never made: the PDB is not even asked for.
#[tokio::test]
async fn a_pdb_whose_age_is_16_or_more_is_converted_too() {
    let up = FakeUpstream::start().await;
    let id = "9214611565FA4C538FE724A797B860F710";
    up.serve(&format!("/aged.pdb/{id}/aged.pdb"), pdb_with_age(0x10));
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let r = s.get(&format!("/aged.pdb/{id}/aged.sym")).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(
        up.hits(&format!("/aged.pdb/{id}/aged.pdb")),
        1,
        "the PDB was not asked for"
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(&format!("MODULE windows x86 {id} ")),
        "{body:.100}"
    );
}

/// `max_minidump_size` bounds the decoded dump part only: a Crashpad-style gzip body whose
/// other part decodes to 64 MiB (from ~64 KiB sent) is decoded whole and accepted. A real
/// attacker sends a few MiB that decode to many GiB: seconds to minutes of CPU per request.
#[tokio::test]
async fn a_gzip_bomb_in_a_part_before_the_dump_is_bounded() {
    let s = Symhub::start(&config_with(
        &[],
        "[symbolication]\nmax_minidump_size = \"1 MiB\"\n",
    ));
    let url = format!("{}/api/minidump", s.url);
    let dump = std::fs::read(fixtures().join("breakpad/minidumps/minidump2.dmp")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let w = |gz: &mut flate2::write::GzEncoder<Vec<u8>>, b: &[u8]| {
        std::io::Write::write_all(gz, b).unwrap()
    };
    w(
        &mut gz,
        b"--XX\r\nContent-Disposition: form-data; name=\"junk\"; filename=\"j\"\r\n\r\n",
    );
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        w(&mut gz, &zeros);
    }
    w(&mut gz, b"\r\n--XX\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"d\"\r\n\r\n");
    w(&mut gz, &dump);
    w(&mut gz, b"\r\n--XX--\r\n");
    let body = gz.finish().unwrap();
    assert!(body.len() < 200 * 1024);
    let r = client()
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=XX")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        413,
        "64 MiB decoded from a gzip body with max_minidump_size = 1 MiB"
    );
}

/// Any `<anything>.sym` name under a PDB's key is made from the PDB, each name by a
/// conversion and a cache entry of its own: N names, N full conversions of the same PDB.
#[tokio::test]
async fn other_sym_names_under_one_pdb_key_do_not_convert_again() {
    let up = pdb_upstream().await;
    let (name, id) = PDBS[1];
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    for n in [name, "a", "b", "c"] {
        let r = s.get(&pdb_path(name, id, &format!("{n}.sym"))).await;
        assert!(
            r.status() == 200 || r.status() == 404,
            "{n}: {}",
            r.status()
        );
    }
    assert_eq!(
        s.stderr().matches("made a .sym on demand").count(),
        1,
        "one PDB converted once per name asked"
    );
}

/// A `.sym` whose MODULE line names another debug id (a mislabelled upstream file) is used
/// as if it were the module's: `found_modules` true and frames named from the wrong file.
/// Eliot answers false for it (symbolic's `get_object(debug_id=...)` finds no object), and
/// symhub's own on-demand path refuses such a result ("a mislabelled upstream file").
#[tokio::test]
async fn a_sym_of_another_debug_id_is_not_used() {
    let up = FakeUpstream::start().await;
    let sym = std::fs::read(
        fixtures()
            .join("breakpad/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"),
    )
    .unwrap();
    let wrong = "00000000000000000000000000000000B";
    up.serve(&format!("/test_app.pdb/{wrong}/test_app.sym"), sym);
    let s = Symhub::start(&config_with(&[("up", &up.url, "")], ""));
    let body = format!(
        r#"{{"jobs": [{{"memoryMap": [["test_app.pdb", "{wrong}"]], "stacks": [[[0, 17054]]]}}]}}"#
    );
    let (status, v, _) = post_json(&format!("{}/symbolicate/v5", s.url), &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["results"][0]["found_modules"][format!("test_app.pdb/{wrong}")],
        false,
        "{v}"
    );
    assert!(
        v["results"][0]["stacks"][0][0].get("function").is_none(),
        "{v}"
    );
}
