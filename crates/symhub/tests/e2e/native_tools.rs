//! The native rig checked on its own, without symhub: if this fails, the native upload
//! tests' expectations (keys, symbolicated stacks) cannot be trusted either.

use crate::native_support::*;
use crate::support::minidump_stackwalk;

/// The Windows builds: both LLVM tools agree on each PDB's identity, and the image's
/// CodeView record names its PDB with the DBI stream's age.
#[test]
fn windows_builds_read_back_with_llvm_tools() {
    if !native_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let win = build_windows_program(dir.path());
    for (image, pdb) in [(&win.exe, &win.pdb), (&win.dll, &win.dll_pdb)] {
        let pe = readobj_pe(image);
        let facts = pdbutil_facts(pdb);
        let (guid, age) = pdbutil_guid_age(pdb);
        eprintln!("{}: {pe:?}\n{}: {facts:?}", image.display(), pdb.display());
        assert_eq!(pe.pdb_guid, guid, "llvm-readobj and llvm-pdbutil disagree");
        assert_eq!(pe.pdb_age, age, "the image names the DBI age");
        assert_eq!(Some(pe.pdb_path.as_str()), pdb.to_str());
        assert_ne!(pe.timestamp, 0);
        assert_eq!(pe.size_of_image % 0x1000, 0, "SizeOfImage is whole pages");

        let name = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_owned();
        let pe_key = expected_pe_key(&name(image), &pe);
        let pdb_key = expected_pdb_key(&name(pdb), &guid, age);
        eprintln!("keys: {pe_key}  {pdb_key}");
        let stamp = format!("{:08X}", pe.timestamp);
        assert!(pe_key.starts_with(&format!("{}/{stamp}", name(image))));
        assert!(pdb_key.ends_with(&format!("{guid}{age:x}/{}", name(pdb))));
    }
}

/// The Linux build, dumped live and walked by minidump-stackwalk; with `dump_syms`
/// installed, the walk's top three frames must be `inner_wait` ← `outer` ← `main`, with source
/// lines.
#[test]
fn linux_minidump_walks_to_main() {
    if !native_tools() {
        return;
    }
    let Some(stackwalk) = minidump_stackwalk() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let linux = build_linux_program(dir.path());
    let dump = write_minidump(&linux.stripped, &dir.path().join("waiter.dmp"));
    let size = std::fs::metadata(&dump.dump).unwrap().len();
    eprintln!("minidump of pid {}: {size} bytes", dump.pid);

    let symbols = dir.path().join("symbols");
    std::fs::create_dir_all(&symbols).unwrap();
    let bare = stackwalk_local(&stackwalk, &symbols, &dump.dump);
    eprintln!("{bare}");
    // The module list shows the running file; without symbols frames are offsets only.
    assert!(bare.contains("waiter"), "{bare}");

    let Some(dump_syms) = dump_syms_tool() else {
        eprintln!("SKIPPED: symbolicated walk, dump_syms not installed");
        return;
    };
    let sym = write_sym(&dump_syms, &linux.binary_with_debug, &symbols);
    eprintln!("{}", sym.display());
    let walked = stackwalk_local(&stackwalk, &symbols, &dump.dump);
    eprintln!("{walked}");
    // The frames of the requesting thread: ` 0  waiter!inner_wait [waiter.c : 14 + 0x7]`.
    let thread = &walked[walked.find("(crashed)").expect("a requesting thread")..];
    let frames: Vec<&str> = thread
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    let at = |f: &str| {
        frames
            .iter()
            .position(|l| l.contains(&format!("waiter!{f} [waiter.c : ")))
            .unwrap_or_else(|| panic!("no {f} frame with a line:\n{walked}"))
    };
    let (inner, outer, main) = (at("inner_wait"), at("outer"), at("main"));
    assert!(inner == 0 && outer == 1 && main == 2, "{walked}");
}
