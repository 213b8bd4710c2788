//! Test rig for native debug file uploads: real Windows (PE + PDB) and Linux (ELF, split
//! debug file) programs built on this machine, the facts their keys are made of read back
//! with independent tools (LLVM's `llvm-readobj` and `llvm-pdbutil`, elfutils' `eu-readelf`),
//! and a real minidump of a live Linux process written with the `minidump-writer` crate. It
//! owns processes and temp files only; nothing here uses symhub's code, so the expected keys
//! it gives cannot share a bug with the server.
//!
//! Everything here blocks (it runs processes and waits for them): call it from `#[test]`
//! functions, or from `tokio::task::spawn_blocking` in async tests.
//!
//! The Windows program is compiled and linked on Linux without any Windows SDK or CRT:
//! Debian's clang in cl mode (`clang --driver-mode=cl`; Debian 12's `clang` package has no
//! `clang-cl` link) and `lld-link`, with `/nodefaultlib` and an explicit entry point, so the
//! code may call nothing outside itself. The tools come from Debian's `clang`, `lld`, `llvm`,
//! `gcc`, `binutils` and `elfutils`; `scripts/test` installs them. [`native_tools`] skips a
//! test when one is missing, or fails it when `SYMHUB_REQUIRE_TOOLS` is set.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use super::elf_support::readelf_build_id;
use super::elf_support::{run, CLIENT_TIMEOUT};

/// What every test here needs, and what `scripts/test` installs from Debian.
const TOOLS: &[&str] = &[
    "clang",
    "lld-link",
    "llvm-readobj",
    "llvm-pdbutil",
    "gcc",
    "objcopy",
    "strip",
    "eu-readelf",
];

/// True when every tool is installed. Otherwise the test should return: this prints a SKIPPED
/// line, or panics when `SYMHUB_REQUIRE_TOOLS` is set (as `scripts/test` sets it), so a
/// missing tool can never pass silently there.
pub fn native_tools() -> bool {
    for tool in TOOLS {
        if !tool_runs(tool) {
            assert!(
                std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
                "{tool} is not installed; scripts/test installs it (Debian: clang, lld, llvm, \
                 gcc, binutils, elfutils)"
            );
            eprintln!("SKIPPED: {tool} not installed (run ./scripts/test)");
            return false;
        }
    }
    true
}

fn tool_runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// The Windows program

/// A Windows x86_64 program and DLL with their PDBs, built on Linux.
pub struct WindowsBuild {
    /// Holds exactly the four files below (objects and the import library are elsewhere):
    /// the directory to upload.
    pub out_dir: PathBuf,
    /// `crash.exe`: console subsystem, entry `main`; `main` → `middle` → `crash_here`.
    pub exe: PathBuf,
    /// `crash.pdb`, the one `exe`'s CodeView record names (by absolute path).
    pub pdb: PathBuf,
    /// `crashlib.dll`: exports `middle`; entry `DllMain`.
    pub dll: PathBuf,
    /// `crashlib.pdb`, named by `dll`.
    pub dll_pdb: PathBuf,
}

const CRASH_C: &str = r#"/* symhub native rig: a Windows program that links against nothing. */
__declspec(noinline) int crash_here(int x)
{
    volatile int *nowhere = (volatile int *)0;
    if (x == 42)
        return *nowhere;
    return x + 1;
}

__declspec(noinline) int middle(int x)
{
    return crash_here(x * 2) + 1;
}

int main(void)
{
    return middle(3);
}
"#;

const CRASHLIB_C: &str = r#"/* symhub native rig: a Windows DLL that links against nothing. */
__declspec(noinline) int crash_here(int x)
{
    return x + 1;
}

__declspec(dllexport) int middle(int x)
{
    return crash_here(x * 2) + 1;
}

int __stdcall DllMain(void *module, unsigned reason, void *reserved)
{
    return 1;
}
"#;

/// Writes the C sources under `dir/src` and builds `dir/out/{crash.exe,crash.pdb,
/// crashlib.dll,crashlib.pdb}` (objects and the import library go to `dir/obj`). Panics
/// with the tools' output if a step fails or an output file is missing or empty.
pub fn build_windows_program(dir: &Path) -> WindowsBuild {
    let dir = dir.canonicalize().expect("the build directory exists");
    let (src, obj, out) = (dir.join("src"), dir.join("obj"), dir.join("out"));
    for d in [&src, &obj, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(src.join("crash.c"), CRASH_C).unwrap();
    std::fs::write(src.join("crashlib.c"), CRASHLIB_C).unwrap();
    for name in ["crash", "crashlib"] {
        // cl mode needs the MSVC target spelled out (its default is the host's, ELF); /Z7
        // puts CodeView in the object for lld-link to merge into the PDB; /GS- because the
        // stack cookie check lives in the CRT, which is not linked.
        run(Command::new("clang")
            .args(["--driver-mode=cl", "--target=x86_64-pc-windows-msvc"])
            .args(["/nologo", "/c", "/Z7", "/Od", "/GS-"])
            .arg(format!("/Fo{}", obj.join(format!("{name}.obj")).display()))
            // After `--` an absolute path cannot be taken for a `/option`.
            .arg("--")
            .arg(src.join(format!("{name}.c"))));
    }
    // Relative names from `out`: lld-link reads an absolute Linux path given as an input
    // (`/tmp/...`) as an option. It still records the PDB by absolute path.
    let link = |args: &[&str]| {
        run(Command::new("lld-link")
            .args(["/nologo", "/nodefaultlib", "/debug", "/machine:x64"])
            .args(args)
            .current_dir(&out));
    };
    link(&[
        "/entry:main",
        "/subsystem:console",
        "/pdb:crash.pdb",
        "/out:crash.exe",
        "../obj/crash.obj",
    ]);
    link(&[
        "/dll",
        "/entry:DllMain",
        "/pdb:crashlib.pdb",
        "/implib:../obj/crashlib.lib",
        "/out:crashlib.dll",
        "../obj/crashlib.obj",
    ]);
    let build = WindowsBuild {
        exe: out.join("crash.exe"),
        pdb: out.join("crash.pdb"),
        dll: out.join("crashlib.dll"),
        dll_pdb: out.join("crashlib.pdb"),
        out_dir: out,
    };
    for f in [&build.exe, &build.pdb, &build.dll, &build.dll_pdb] {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} was not produced", f.display());
    }
    build
}

// ---------------------------------------------------------------------------------------------
// Reading the Windows files with LLVM's tools

/// A PE image's key facts as `llvm-readobj --file-headers --coff-debug-directory` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeFacts {
    /// COFF header `TimeDateStamp` (seconds since 1970; lld-link writes the link time).
    pub timestamp: u32,
    /// Optional header `SizeOfImage`, bytes.
    pub size_of_image: u32,
    /// The CodeView (RSDS) record's GUID, 32 uppercase hex digits in the usual GUID text
    /// order (what `llvm-pdbutil` prints, without braces and dashes).
    pub pdb_guid: String,
    /// The CodeView record's age.
    pub pdb_age: u32,
    /// The CodeView record's PDB path, as written (lld-link: absolute, with `/`).
    pub pdb_path: String,
}

/// Runs `llvm-readobj --file-headers --coff-debug-directory` on `pe`. Panics if the tool
/// fails or a field (including the CodeView record) is missing from its output.
pub fn readobj_pe(pe: &Path) -> PeFacts {
    let out = run(Command::new("llvm-readobj")
        .args(["--file-headers", "--coff-debug-directory"])
        .arg(pe));
    let header = section(&out, "ImageFileHeader {");
    let optional = section(&out, "ImageOptionalHeader {");
    let debug = section(&out, "PDBInfo {");
    // `TimeDateStamp: 2026-11-29 15:27:44 (0x6B0C4470)`: the hex in parentheses is the
    // field; the date is the tool's rendering of it.
    let stamp = field(header, "TimeDateStamp");
    let stamp_hex = stamp
        .rsplit_once("(0x")
        .and_then(|(_, h)| h.strip_suffix(')'))
        .unwrap_or_else(|| panic!("TimeDateStamp not as expected: {stamp}\n{out}"));
    // `PDBGUID: (13 CB A1 C4 63 E0 D3 55 4C 4C 44 20 50 44 42 2E)`: the 16 bytes as stored.
    // A GUID's text form shows its first three fields (4, 2, 2 bytes, stored little-endian)
    // most significant byte first and the last 8 bytes in order; the test checks the result
    // against llvm-pdbutil's own rendering of the PDB's GUID.
    let bytes: Vec<&str> = field(debug, "PDBGUID")
        .trim_matches(|c| c == '(' || c == ')')
        .split_whitespace()
        .collect();
    assert_eq!(bytes.len(), 16, "PDBGUID not 16 bytes:\n{out}");
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let pdb_guid: String = order.iter().map(|&i| bytes[i].to_uppercase()).collect();
    PeFacts {
        timestamp: u32::from_str_radix(stamp_hex, 16).unwrap(),
        size_of_image: field(optional, "SizeOfImage").parse().unwrap(),
        pdb_guid,
        pdb_age: field(debug, "PDBAge").parse().unwrap(),
        pdb_path: field(debug, "PDBFileName").to_owned(),
    }
}

/// A PDB's identity as `llvm-pdbutil` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbFacts {
    /// The PDB info stream's GUID, 32 uppercase hex digits (no braces or dashes).
    pub guid: String,
    /// The PDB info stream's age (`dump -summary`): how many times the file was written.
    pub info_age: u32,
    /// The DBI stream's age (`pdb2yaml -dbi-stream`).
    pub dbi_age: u32,
}

/// GUID and both ages of `pdb`, from `llvm-pdbutil dump -summary` and
/// `llvm-pdbutil pdb2yaml -dbi-stream` (`dump` has no option printing the DBI age). Panics
/// if a tool fails or a field is missing.
pub fn pdbutil_facts(pdb: &Path) -> PdbFacts {
    let summary = run(Command::new("llvm-pdbutil")
        .args(["dump", "-summary"])
        .arg(pdb));
    let yaml = run(Command::new("llvm-pdbutil")
        .args(["pdb2yaml", "-dbi-stream"])
        .arg(pdb));
    let guid = field(&summary, "GUID")
        .trim_matches(|c| c == '{' || c == '}')
        .replace('-', "")
        .to_uppercase();
    assert_eq!(guid.len(), 32, "GUID not as expected:\n{summary}");
    PdbFacts {
        guid,
        info_age: field(&summary, "Age").parse().unwrap(),
        dbi_age: field(section(&yaml, "DbiStream:"), "Age").parse().unwrap(),
    }
}

/// The PDB's GUID (uppercase hex, no dashes) and the age its SymSrv key uses.
///
/// The age is the DBI stream's. The PDB info stream's age counts writes of the file and
/// can run ahead of the age the linker put in the image (incremental links, tools that
/// rewrite the PDB), while the DBI age is the one the image's CodeView record carries; a
/// debugger asks the symbol server with the image's, so that is the one that finds the
/// file (Breakpad's and symbolic's PDB ids use the DBI age for this reason). lld-link
/// writes 1 in both; the self-check asserts the DBI age equals the image's.
pub fn pdbutil_guid_age(pdb: &Path) -> (String, u32) {
    let facts = pdbutil_facts(pdb);
    (facts.guid, facts.dbi_age)
}

/// The SymSrv key of an image: `<name>/<TimeDateStamp %08X><SizeOfImage %x>/<name>`. `name`
/// is used as given (e.g. `crash.exe`); case normalization is the server's business.
pub fn expected_pe_key(name: &str, pe: &PeFacts) -> String {
    format!("{name}/{:08X}{:x}/{name}", pe.timestamp, pe.size_of_image)
}

/// The SymSrv key of a PDB: `<name>/<GUID><age %x>/<name>`, with `guid` as
/// [`pdbutil_guid_age`] gives it (uppercase, no dashes). `name` is used as given.
pub fn expected_pdb_key(name: &str, guid: &str, age: u32) -> String {
    format!("{name}/{guid}{age:x}/{name}")
}

/// The part of `text` from the line equal (trimmed) to `header` on: fields read from it
/// belong to that section or a later one, never an earlier one with the same name.
fn section<'a>(text: &'a str, header: &str) -> &'a str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == header {
            return &text[at..];
        }
        at += line.len();
    }
    panic!("no `{header}` in:\n{text}")
}

/// The value of the first `name: value` line in `text`, trimmed.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{name}:` in:\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// The Linux program

/// A Linux program (x86_64 on this rig) that waits to be dumped, split like a distribution
/// package.
pub struct LinuxBuild {
    /// The binary as linked, code and DWARF (`build/waiter`).
    pub binary_with_debug: PathBuf,
    /// `strip --strip-debug --strip-unneeded` of it plus `.gnu_debuglink` (`split/waiter`).
    pub stripped: PathBuf,
    /// `objcopy --only-keep-debug` of it (`split/waiter.debug`).
    pub debug_file: PathBuf,
    /// Holds exactly `stripped` and `debug_file`: the directory to upload.
    pub split_dir: PathBuf,
    /// The source's absolute path, as the DWARF names it (`src/waiter.c`).
    pub source: PathBuf,
    /// Build id, lowercase hex (20 bytes), as `eu-readelf -n` prints it for all three files.
    pub build_id: String,
}

/// The program [`write_minidump`] runs. Frame pointers are kept so a walker without CFI
/// can still get from `inner_wait` to `main`.
const WAITER_C: &str = r#"/* symhub native rig: a program that waits, in a known call chain, to be dumped. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) int inner_wait(int depth)
{
    printf("ready\n");
    fflush(stdout);
    for (;;) {
#if defined(__x86_64__)
        /* pause(2) issued right here rather than through libc (or a helper gcc would not
           inline at -O0), so the thread's program counter is in inner_wait itself. */
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(34L) : "rcx", "r11", "memory");
        (void)ret;
#else
        pause();
#endif
    }
    return depth;
}

__attribute__((noinline)) int outer(int depth)
{
    return inner_wait(depth + 1) + 1;
}

int main(void)
{
    return outer(1);
}
"#;

/// Writes `dir/src/waiter.c`, builds `dir/build/waiter` with
/// `gcc -g -O0 -fno-omit-frame-pointer -Wl,--build-id=sha1` and splits it into
/// `dir/split/{waiter,waiter.debug}` the way `elf_support::build_c_program` does. Panics
/// with the tool's output if a step fails, or if the three files' build ids differ.
///
/// Run with no arguments, the program prints `ready\n`, flushes, and then waits in
/// `main` → `outer` → `inner_wait` until killed.
pub fn build_linux_program(dir: &Path) -> LinuxBuild {
    let dir = dir.canonicalize().expect("the build directory exists");
    let (src, build, split) = (dir.join("src"), dir.join("build"), dir.join("split"));
    for d in [&src, &build, &split] {
        std::fs::create_dir_all(d).unwrap();
    }
    let source = src.join("waiter.c");
    std::fs::write(&source, WAITER_C).unwrap();
    let binary_with_debug = build.join("waiter");
    let stripped = split.join("waiter");
    let debug_file = split.join("waiter.debug");
    run(Command::new("gcc")
        .args([
            "-g",
            "-O0",
            "-fno-omit-frame-pointer",
            "-Wl,--build-id=sha1",
        ])
        .arg("-o")
        .arg(&binary_with_debug)
        .arg(&source));
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&binary_with_debug)
        .arg(&debug_file));
    run(Command::new("strip")
        .args(["--strip-debug", "--strip-unneeded", "-o"])
        .arg(&stripped)
        .arg(&binary_with_debug));
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug_file.display()))
        .arg(&stripped));
    let build_id = readelf_build_id(&binary_with_debug);
    assert_eq!(build_id.len(), 40, "--build-id=sha1 gives 20 bytes");
    for f in [&stripped, &debug_file] {
        assert_eq!(
            readelf_build_id(f),
            build_id,
            "eu-readelf -n {}",
            f.display()
        );
    }
    LinuxBuild {
        binary_with_debug,
        stripped,
        debug_file,
        split_dir: split,
        source,
        build_id,
    }
}

// ---------------------------------------------------------------------------------------------
// A minidump of the live program

/// A minidump written of a process that is gone by the time this is returned.
#[derive(Debug)]
pub struct MinidumpRun {
    /// The minidump file (the `out` given to [`write_minidump`]).
    pub dump: PathBuf,
    /// The dumped process's id; its only thread's id is the same.
    pub pid: u32,
}

/// Kills and reaps the child however the caller leaves (a panic included), so no rig
/// process outlives its test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary` (a build of [`build_linux_program`]), waits for its `ready` line, writes a
/// Linux minidump of it to `out` with `minidump-writer` (ptrace, which Yama's default scope
/// allows on one's own child, and root anywhere), then kills it. The dump names the main (only) thread as the
/// requesting one, with no crash context: minidump-stackwalk reports `DUMP_REQUESTED` and
/// walks that thread as the crashed one, `inner_wait` ← `outer` ← `main`.
/// Panics if the program does not say `ready` within [`CLIENT_TIMEOUT`] or the writer fails.
pub fn write_minidump(binary: &Path, out: &Path) -> MinidumpRun {
    use minidump_writer::minidump_writer::MinidumpWriterConfig;

    let mut child = KillOnDrop(
        Command::new(binary)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display())),
    );
    let stdout = child.0.stdout.take().unwrap();
    // A thread reads the line so the wait can be bounded; it ends with the pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(CLIENT_TIMEOUT) {
        Ok(line) if line == "ready\n" => {}
        other => panic!("{} did not say ready: {other:?}", binary.display()),
    }
    let pid = child.0.id();
    wait_sleeping(pid);
    let tid = i32::try_from(pid).unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    MinidumpWriterConfig::new(tid, tid)
        .write(&mut file)
        .unwrap_or_else(|e| panic!("minidump-writer on pid {pid}: {e}"));
    drop(child);
    MinidumpRun {
        dump: out.to_owned(),
        pid,
    }
}

/// Waits until the process sleeps (state `S` in `/proc/<pid>/stat`). The `ready` line is
/// written before the wait starts, so a dump taken at once can catch the thread still in
/// libc returning from the write; after it, `pause` is the only place the program sleeps.
/// Panics after [`CLIENT_TIMEOUT`].
fn wait_sleeping(pid: u32) {
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // `pid (comm) state ...`: comm may hold spaces or parentheses, so after the last `)`.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('S') {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never went to sleep: {stat}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Breakpad symbols and the consumer

/// The `dump_syms` binary, if installed. Tests must not require it (`scripts/test` does not
/// install it; symhub generates `.sym` files itself), so there is no panic here: callers
/// print a SKIPPED line for the part that needs it.
pub fn dump_syms_tool() -> Option<String> {
    let tool = std::env::var("DUMP_SYMS").unwrap_or_else(|_| "dump_syms".into());
    tool_runs(&tool).then_some(tool)
}

/// Runs `<dump_syms_tool> <binary>` and stores its output in Breakpad's symbol-directory
/// layout, `<symbols_dir>/<name>/<id>/<name>.sym`, with name and id taken from the `MODULE`
/// line it printed. Returns the `.sym` path.
pub fn write_sym(dump_syms_tool: &str, binary: &Path, symbols_dir: &Path) -> PathBuf {
    let sym = run(Command::new(dump_syms_tool).arg(binary));
    let module = sym.lines().next().unwrap_or_default();
    // `MODULE Linux x86_64 <ID> <name>`; the name is last and may hold no space here.
    let parts: Vec<&str> = module.split(' ').collect();
    assert!(
        parts.len() == 5 && parts[0] == "MODULE",
        "not a MODULE line: {module}"
    );
    let (id, name) = (parts[3], parts[4]);
    let dir = symbols_dir.join(name).join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sym"));
    std::fs::write(&path, sym).unwrap();
    path
}

/// `minidump-stackwalk --symbols-path <symbols_dir> <dump>` (human-readable report on
/// stdout); panics with its stderr unless it succeeds.
pub fn stackwalk_local(tool: &str, symbols_dir: &Path, dump: &Path) -> String {
    run(Command::new(tool)
        .arg("--symbols-path")
        .arg(symbols_dir)
        .arg(dump))
}
