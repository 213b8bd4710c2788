//! Hostile and odd requests (found by a break-it pass): mislabelled `.sym` files, PDB ages
//! of 16 or more, gzip bombs in any form part, other `.sym` names under a PDB key.

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

/// A PDB whose age is 16 or more has a 34-digit Breakpad id (`<GUID>10`): its `.sym` is
/// made like any other.
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

/// `max_minidump_size` bounds the whole decoded body, not the dump part only: a
/// Crashpad-style gzip body whose first part decodes to 64 MiB (from ~64 KiB sent) is
/// refused once the bound is passed, not decoded whole.
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

/// Only the module's own `.sym` name is made from a PDB: other names under its key would
/// each cost a conversion and a cache entry of their own.
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

/// A `.sym` whose MODULE line names another debug id (a mislabelled upstream file) is not
/// the module's: `found_modules` false and no function, as Eliot answers (symbolic's
/// `get_object(debug_id=...)` finds no object).
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
    // Asked again: the same answer, without parsing the file again.
    let (_, again, _) = post_json(&format!("{}/symbolicate/v5", s.url), &body).await;
    assert_eq!(again, v);
    assert_eq!(s.stderr().matches("cannot use this symbol file").count(), 1);
}

/// A body that never finishes is answered 408 within `request_timeout`, for both routes,
/// and holds no permit meanwhile past that.
#[tokio::test]
async fn a_body_that_never_ends_times_out() {
    let s = Symhub::start(&config_with(
        &[],
        "[symbolication]\nrequest_timeout = \"1s\"\n",
    ));
    for path in ["/symbolicate/v5", "/api/minidump"] {
        let url = s.url.clone();
        let started = std::time::Instant::now();
        let answer = tokio::task::spawn_blocking(move || {
            // Announces 1000 bytes, sends 10.
            raw_request(
                &url,
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"jobs\": ["
                )
                .as_bytes(),
            )
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("symbolication.request_timeout"), "{answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// With `auth.require_for_downloads`, the Firefox Profiler's browser sees the 401 itself,
/// not a CORS failure.
#[tokio::test]
async fn a_refused_key_still_carries_cors_headers() {
    let s = Symhub::start(&config_with(
        &[],
        &format!("{}require_for_downloads = true\n", auth_config("k1")),
    ));
    let (status, v, headers) = post_json(&format!("{}/symbolicate/v5", s.url), "{}").await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let r = client()
        .post(format!("{}/symbolicate/v5", s.url))
        .bearer_auth("k1")
        .body(r#"{"jobs": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = s.stderr();
    assert!(
        log.contains("outcome=\"symbolicated\" key=\"/symbolicate/v5\"")
            && log.contains("jobs=0 frames=0"),
        "{log}"
    );
}

/// A shared library that was never split has its debug info inside: made from the binary
/// alone when no debug file exists.
#[tokio::test]
async fn an_unsplit_elf_is_made_from_the_binary_alone() {
    let up = FakeUpstream::start().await;
    let build_id = "cdf5d61939d696aebb337a003e27f64cce761918";
    up.serve(
        &format!("/buildid/{build_id}/executable"),
        std::fs::read(fixtures().join("elf/libgreet.so.1")).unwrap(),
    );
    let s = Symhub::start(&config_with(
        &[("d", &up.url, "protocol = \"debuginfod\"")],
        "",
    ));
    let r = s
        .get(&format!("/libgreet.so.1/{build_id}/libgreet.so.1.sym"))
        .await;
    assert_eq!(r.status(), 200);
    let sym = r.text().await.unwrap();
    assert!(sym.starts_with("MODULE Linux x86_64 "), "{sym:.200}");
    assert!(sym.contains(" libgreet.so.1\n"), "{sym:.200}");
    assert!(
        sym.lines()
            .any(|l| l.starts_with("FUNC") && l.ends_with(" greet_twice")),
        "{sym:.3000}"
    );
}
