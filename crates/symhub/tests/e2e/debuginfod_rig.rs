//! The debuginfod rig on its own, without symhub: a program built with gcc and split,
//! elfutils' server indexing it, and elfutils' and gdb's clients fetching every artifact
//! from it. If this fails, the debuginfod tests that put symhub in front cannot be trusted.

use std::path::Path;

use symhub_core::elf::ElfFile;

use crate::elf_support::*;

#[test]
fn elfutils_serves_a_split_program_to_debuginfod_find_and_gdb() {
    if !elfutils_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let built = build_c_program(dir.path());
    let id = built.build_id.as_str();
    let mut server = ElfutilsDebuginfod::start(&built.index_dir);
    server.wait_for(id);
    let url = server.url.clone();
    let urls = [url.as_str()];
    let read = |p: &Path| std::fs::read(p).unwrap();

    // The split files, byte for byte.
    let debuginfo = debuginfod_find(&urls, &["debuginfo", id]);
    assert_eq!(debuginfo.bytes(), read(&built.debug), "{}", server.log());
    let executable = debuginfod_find(&urls, &["executable", id]);
    assert_eq!(executable.bytes(), read(&built.stripped));
    assert_ne!(
        read(&built.stripped),
        read(&built.exe),
        "stripping changed the file"
    );

    // Both sources, by the absolute paths the DWARF records.
    for source in &built.sources {
        let path = source.to_str().unwrap();
        let found = debuginfod_find(&urls, &["source", id, path]);
        assert_eq!(found.bytes(), read(source), "{path}");
    }

    // Sections: what elfutils serves is what symhub_core::elf reads from the same files —
    // DWARF from the .debug file, code from the executable (NOBITS in the .debug file).
    let debug_bytes = read(&built.debug);
    let exe_bytes = read(&built.stripped);
    let debug = ElfFile::parse(&debug_bytes).unwrap();
    let exe = ElfFile::parse(&exe_bytes).unwrap();
    let info = debuginfod_find(&urls, &["section", id, ".debug_info"]);
    assert_eq!(Some(&info.bytes()[..]), debug.section(".debug_info"));
    assert_eq!(debug.section(".text"), None);
    let text = debuginfod_find(&urls, &["section", id, ".text"]);
    assert_eq!(Some(&text.bytes()[..]), exe.section(".text"));

    // Misses fail: an unknown build id, a source the DWARF does not name, a missing section.
    let unknown = "00".repeat(20);
    let miss = debuginfod_find(&urls, &["debuginfo", &unknown]);
    assert!(!miss.ok(), "{}", miss.describe());
    let other = built.src_dir.join("other.c");
    let miss = debuginfod_find(&urls, &["source", id, other.to_str().unwrap()]);
    assert!(!miss.ok(), "{}", miss.describe());
    let miss = debuginfod_find(&urls, &["section", id, ".no_such_section"]);
    assert!(!miss.ok(), "{}", miss.describe());
    // elfutils answers a malformed build id with 503, a missing one with 404 (what symhub
    // must not copy: a 5xx reads as an outage).
    assert_eq!(server.get("/buildid/abc/debuginfo").map(|r| r.0), Some(503));
    assert_eq!(
        server
            .get(&format!("/buildid/{unknown}/debuginfo"))
            .map(|r| r.0),
        Some(404)
    );

    // gdb: the separate debug info and then the source of a function in the second file,
    // neither of which it can find locally.
    let greet_c = built.sources[1].to_str().unwrap();
    let out = gdb_list_with_debuginfod(&urls, &built.stripped, "greet_count", &built.src_dir);
    assert!(
        out.contains("Downloading separate debug info for"),
        "gdb did not fetch debug info:\n{out}\n{}",
        server.log()
    );
    assert!(
        out.contains(&format!("source file {greet_c}")),
        "gdb did not fetch the source:\n{out}"
    );
    assert!(out.contains("int greet_count(const char *name)"), "{out}");
    assert!(out.contains("printf(\"hello, %s\\n\", name);"), "{out}");
    // The server saw gdb's requests, by build id, with the source's DWARF path.
    let log = server.log();
    assert!(
        log.contains(&format!("GET /buildid/{id}/debuginfo 200")),
        "{log}"
    );
    assert!(
        log.contains(&format!("GET /buildid/{id}/source{greet_c} 200")),
        "{log}"
    );

    // An outage: the client fails (connection refused) instead of hanging.
    server.kill();
    let down = debuginfod_find(&urls, &["debuginfo", id]);
    assert!(!down.ok(), "{}", down.describe());
    // Without debuginfod gdb has neither symbols nor source.
    let out = gdb_list_with_debuginfod(&urls, &built.stripped, "greet_count", &built.src_dir);
    assert!(!out.contains("int greet_count(const char *name)"), "{out}");
}
