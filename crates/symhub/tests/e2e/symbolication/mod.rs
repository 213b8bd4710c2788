//! Symbolication end to end: `.sym` files made on demand from upstream PDB and ELF files,
//! `/symbolicate/v5` against Eliot's behaviour, and `/api/minidump` against the real
//! `minidump-stackwalk` binary on the same dumps and symbols.

mod hostile;
mod minidumps;
mod on_demand;
pub(crate) mod replaced;
mod v5;

use std::path::Path;

use crate::support::*;

/// The fixture PDBs: `(name, Breakpad debug id)`; their `.sym` files, made by Breakpad's
/// own dump_syms on Windows, are beside them in `tests/fixtures/windows`.
pub const PDBS: [(&str, &str); 2] = [
    ("dump_syms_regtest", "9214611565FA4C538FE724A797B860F71"),
    ("dump_syms_regtest64", "72E103A85CB249078B76B2E7C06257B13"),
];

pub fn pdb_path(name: &str, id: &str, file: &str) -> String {
    format!("/{name}.pdb/{id}/{file}")
}

/// An upstream that has the fixture PDBs and nothing else (no `.sym`).
pub async fn pdb_upstream() -> FakeUpstream {
    let up = FakeUpstream::start().await;
    for (name, id) in PDBS {
        let pdb = std::fs::read(fixtures().join(format!("windows/{name}.pdb"))).unwrap();
        up.serve(&pdb_path(name, id, &format!("{name}.pdb")), pdb);
    }
    up
}

/// An upstream serving every fixture `.sym` in the Breakpad layout.
pub async fn sym_upstream() -> FakeUpstream {
    let up = FakeUpstream::start().await;
    let root = fixtures().join("breakpad/symbols");
    for file in walk(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        up.serve(&format!("/{rel}"), std::fs::read(&file).unwrap());
    }
    up
}

pub async fn post_json(
    url: &str,
    body: &str,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let r = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (status, v, headers)
}

/// What a Breakpad `.sym` says about `offset`, read by this test's own few lines: the FUNC
/// covering it, its offset in the function, the line record's file and line.
pub fn expected_at(sym: &str, offset: u64) -> Option<(String, u64, Option<String>, Option<u32>)> {
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    let mut files = std::collections::HashMap::new();
    let mut in_func: Option<(String, u64)> = None;
    let mut found: Option<(String, u64, Option<String>, Option<u32>)> = None;
    for line in sym.lines() {
        let f: Vec<&str> = line.splitn(5, ' ').collect();
        match f[0] {
            "FILE" => {
                let (n, name) = line[5..].split_once(' ').unwrap();
                files.insert(n.to_owned(), name.to_owned());
            }
            "FUNC" => {
                let f: Vec<&str> = line.strip_prefix("FUNC m ").map_or_else(
                    || line[5..].splitn(4, ' ').collect(),
                    |rest| rest.splitn(4, ' ').collect(),
                );
                let (start, size) = (hex(f[0]), hex(f[1]));
                in_func = None;
                if (start..start + size).contains(&offset) {
                    in_func = Some((f[3].to_owned(), start));
                    found = Some((f[3].to_owned(), offset - start, None, None));
                }
            }
            _ if f[0].bytes().all(|b| b.is_ascii_hexdigit()) && f.len() == 4 => {
                if let (Some(_), Some(found)) = (&in_func, found.as_mut()) {
                    let (start, size) = (hex(f[0]), hex(f[1]));
                    if (start..start + size).contains(&offset) {
                        found.2 = files.get(f[3]).cloned();
                        found.3 = Some(f[2].parse().unwrap());
                    }
                }
            }
            _ => in_func = None,
        }
    }
    found
}

/// Frames of every thread of a `minidump-stackwalk --json` document: module, function, file,
/// line and how each was found.
pub fn frames(doc: &serde_json::Value) -> Vec<Vec<[String; 5]>> {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    [
                        s(&f["module"]),
                        s(&f["function"]),
                        s(&f["file"]),
                        s(&f["line"]),
                        s(&f["trust"]),
                    ]
                })
                .collect()
        })
        .collect()
}

/// `POST /api/minidump` of `dump` to `s`: symhub's stackwalk, which must succeed.
pub async fn walk_dump(s: &Symhub, dump: &[u8]) -> serde_json::Value {
    let r = client()
        .post(format!("{}/api/minidump", s.url))
        .body(dump.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", s.stderr());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// `minidump-stackwalk --json DUMP` with symbols from `symbols_url`.
pub async fn stackwalk_json(tool: &str, symbols_url: &str, dump: &Path) -> serde_json::Value {
    serde_json::from_str(&stackwalk_dump(tool, symbols_url, dump, &["--json"]).await).unwrap()
}

/// A Windows x86-64 minidump (made with rust-minidump's synthesizer) of a process that
/// stopped in `dump_syms_regtest64.exe` at `rip_offset`: its one module carries the
/// fixture PDB's CodeView record (GUID 72E103A8-5CB2-4907-8B76-B2E7C06257B1, age 3), so a
/// stackwalker needs that PDB's symbols.
pub fn regtest64_dump(rip_offset: u64) -> Vec<u8> {
    use minidump_common::format::{PlatformId, ProcessorArchitecture};
    use minidump_synth::*;
    use test_assembler::{Endian, Section};
    let le = Endian::Little;
    let base = 0x1_4000_0000u64;
    let name = DumpString::new("c:\\build\\dump_syms_regtest64.exe", le);
    let cv = Section::with_endian(le)
        .append_bytes(b"RSDS")
        .D32(0x72E1_03A8)
        .D16(0x5CB2)
        .D16(0x4907)
        .append_bytes(&[0x8B, 0x76, 0xB2, 0xE7, 0xC0, 0x62, 0x57, 0xB1])
        .D32(3)
        .append_bytes(b"dump_syms_regtest64.pdb\0");
    let module = Module::new(le, base, 0x1A000, &name, 0x589D_FD11, 0, None).cv_record(&cv);
    let stack_top = 0x7fff_0000u64;
    let stack = Memory::with_section(
        Section::with_endian(le).append_repeated(0, 0x200),
        stack_top,
    );
    let context = amd64_context(le, base + rip_offset, stack_top);
    let thread = Thread::new(le, 1, &stack, &context);
    let system_info = SystemInfo::new(le)
        .set_processor_architecture(ProcessorArchitecture::PROCESSOR_ARCHITECTURE_AMD64 as u16)
        .set_platform_id(PlatformId::VER_PLATFORM_WIN32_NT as u32);
    let mut ex = Exception::new(le);
    ex.thread_id = 1;
    ex.exception_record.exception_address = base + rip_offset;
    SynthMinidump::with_endian(le)
        .add_module(module)
        .add(name)
        .add(cv)
        .add_thread(thread)
        .add_exception(ex)
        .add_system_info(system_info)
        .add(context)
        .add_memory(stack)
        .finish()
        .unwrap()
}
