//! Test rig for the debuginfod tests: a real C program built with gcc and split the way
//! distributions ship it, elfutils' own `debuginfod` server indexing it, and the real
//! clients (`debuginfod-find`, gdb) asking for it. It owns processes and temp files only;
//! tests put symhub in front of or behind these pieces.
//!
//! Everything here blocks (it runs processes and waits for them): call it from `#[test]`
//! functions, or from `tokio::task::spawn_blocking` in async tests, never directly on a
//! current-thread runtime that also drives a `FakeUpstream`.
//!
//! The tools are Debian's `gcc`, `binutils`, `elfutils` (`eu-readelf`), `debuginfod` (server
//! and `debuginfod-find`) and `gdb`; `scripts/test` installs them. [`elfutils_tools`] skips a
//! test when one is missing, or fails it when `SYMHUB_REQUIRE_TOOLS` is set.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What every test here needs, and what `scripts/test` installs from Debian.
const TOOLS: &[&str] = &[
    "gcc",
    "objcopy",
    "strip",
    "eu-readelf",
    "debuginfod",
    "debuginfod-find",
    "gdb",
];

/// How long a client may take (`DEBUGINFOD_TIMEOUT` for the clients, and the limit on each
/// process this rig runs). Loopback answers take milliseconds; this only bounds a hang.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// True when every tool is installed. Otherwise the test should return: this prints a SKIPPED
/// line, or panics when `SYMHUB_REQUIRE_TOOLS` is set (as `scripts/test` sets it), so a
/// missing tool can never pass silently there.
pub fn elfutils_tools() -> bool {
    for tool in TOOLS {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
                "{tool} is not installed; scripts/test installs it (Debian: gcc, binutils, \
                 elfutils, debuginfod, gdb)"
            );
            eprintln!("SKIPPED: {tool} not installed (run ./scripts/test)");
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The program

/// A C program built with debug info and split like a distribution package.
pub struct Built {
    /// Where everything lives (the caller's directory).
    pub dir: PathBuf,
    /// The binary as linked: code and DWARF (`build/hello`). Not in `index_dir`.
    pub exe: PathBuf,
    /// `objcopy --only-keep-debug` of it (`index/hello.debug`): DWARF, `.text` as NOBITS.
    pub debug: PathBuf,
    /// `strip --strip-debug --strip-unneeded` of it plus `.gnu_debuglink` (`index/hello`):
    /// what a package ships.
    pub stripped: PathBuf,
    /// Holds exactly `stripped` and `debug`: the directory to index or upload, so that
    /// `debuginfo` can only be `debug` and `executable` only `stripped`.
    pub index_dir: PathBuf,
    /// The directory of the sources (`src`), as the DWARF records it.
    pub src_dir: PathBuf,
    /// Build id, lowercase hex (20 bytes with `--build-id=sha1`).
    pub build_id: String,
    /// The sources' absolute paths, exactly as the DWARF names them (gcc was given absolute
    /// paths): `src/main.c` and `src/greet.c`.
    pub sources: Vec<PathBuf>,
}

const MAIN_C: &str = r#"/* symhub debuginfod rig: the main program. */
#include <stdio.h>

int greet_count(const char *name);

static int twice(int x)
{
    return 2 * x;
}

int main(int argc, char **argv)
{
    int n = greet_count(argc > 1 ? argv[1] : "world");
    printf("%d\n", twice(n));
    return 0;
}
"#;

const GREET_C: &str = r#"/* symhub debuginfod rig: a function in a second file. */
#include <stdio.h>
#include <string.h>

int greet_count(const char *name)
{
    int len = (int)strlen(name);
    printf("hello, %s\n", name);
    return len;
}
"#;

/// Writes the two C files under `dir/src`, builds `dir/build/hello` with
/// `gcc -g -O0 -Wl,--build-id=sha1`, and splits it into `dir/index/{hello,hello.debug}`.
/// Panics (with the tool's output) if a step fails, or if `symhub_core::elf` and
/// `eu-readelf -n` disagree on the build id or the files are not what they should be.
pub fn build_c_program(dir: &Path) -> Built {
    build_c_program_with(dir, "sha1")
}

/// [`build_c_program`] linked with `--build-id=<style>`: `sha1`, or `0x<hex>` for an id of any
/// length (mold's and `--build-id=sha256`'s are 32 bytes; `0x…` gives what it is told).
pub fn build_c_program_with(dir: &Path, style: &str) -> Built {
    let dir = dir.canonicalize().expect("the build directory exists");
    let (src_dir, build, index) = (dir.join("src"), dir.join("build"), dir.join("index"));
    for d in [&src_dir, &build, &index] {
        std::fs::create_dir_all(d).unwrap();
    }
    let sources = vec![src_dir.join("main.c"), src_dir.join("greet.c")];
    std::fs::write(&sources[0], MAIN_C).unwrap();
    std::fs::write(&sources[1], GREET_C).unwrap();
    let exe = build.join("hello");
    let debug = index.join("hello.debug");
    let stripped = index.join("hello");
    run(Command::new("gcc")
        .args(["-g", "-O0", &format!("-Wl,--build-id={style}"), "-o"])
        .arg(&exe)
        .args(&sources)
        .current_dir(&dir));
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&exe)
        .arg(&debug));
    run(Command::new("strip")
        .args(["--strip-debug", "--strip-unneeded", "-o"])
        .arg(&stripped)
        .arg(&exe));
    // objcopy records the base name and the CRC of the file it is given.
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&stripped));

    let build_id = checked_build_id(&stripped, &debug);
    match style.strip_prefix("0x") {
        Some(hex) => assert_eq!(build_id, hex.to_lowercase(), "--build-id={style}"),
        None => assert_eq!(build_id.len(), 40, "--build-id=sha1 gives 20 bytes"),
    }
    Built {
        dir,
        exe,
        debug,
        stripped,
        index_dir: index,
        src_dir,
        build_id,
        sources,
    }
}

/// The build id of the split pair, read with `symhub_core::elf` and checked against
/// `eu-readelf -n`; also checks what each file is.
fn checked_build_id(stripped: &Path, debug: &Path) -> String {
    use symhub_core::elf::ElfFile;
    let exe_bytes = std::fs::read(stripped).unwrap();
    let debug_bytes = std::fs::read(debug).unwrap();
    let exe = ElfFile::parse(&exe_bytes).expect("the stripped binary is ELF");
    let dbg = ElfFile::parse(&debug_bytes).expect("the .debug file is ELF");
    let id = exe.debuginfod_build_id().expect("a build id").to_string();
    assert_eq!(
        dbg.debuginfod_build_id().map(|b| b.to_string()),
        Some(id.clone())
    );
    assert!(
        exe.is_executable() && !exe.has_debug_info(),
        "stripped: code, no DWARF"
    );
    assert!(
        dbg.has_debug_info() && !dbg.is_executable(),
        ".debug: DWARF, no code"
    );
    for f in [stripped, debug] {
        assert_eq!(readelf_build_id(f), id, "eu-readelf -n {}", f.display());
    }
    id
}

/// `Build ID: <hex>` from `eu-readelf -n`.
pub fn readelf_build_id(file: &Path) -> String {
    let out = run(Command::new("eu-readelf").arg("-n").arg(file));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no Build ID in eu-readelf -n output:\n{out}"))
        .to_owned()
}

/// Runs a command to completion within [`CLIENT_TIMEOUT`]; panics with its output unless it
/// succeeds. Returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let (status, stdout, stderr) = run_bounded(cmd);
    assert!(
        status.success(),
        "{cmd:?} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

/// Runs a command with stdout and stderr captured to files (no pipe can fill up), killing it
/// after [`CLIENT_TIMEOUT`].
pub fn run_bounded(cmd: &mut Command) -> (ExitStatus, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (status, read(&out), read(&err))
}

// ---------------------------------------------------------------------------------------------
// elfutils' server

/// elfutils' `debuginfod -F <dir>` on a free port, with its own sqlite database, killed on
/// drop.
///
/// elfutils 0.188 has no option to choose the listen address: it binds every interface,
/// IPv6 and IPv4 (`MHD_USE_DUAL_STACK` in `debuginfod.cxx`). So while a test runs, the
/// indexed temp directory (and the source files its DWARF names) can be read from the
/// network on that random port. The tests only ever talk to it on 127.0.0.1.
pub struct ElfutilsDebuginfod {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl ElfutilsDebuginfod {
    /// Starts the server on `dir_to_index` and waits until its first scan is done. The
    /// server federates to nobody (`DEBUGINFOD_URLS` removed from its environment).
    pub fn start(dir_to_index: &Path) -> Self {
        Self::start_with_env(dir_to_index, &[])
    }

    /// The same with extra environment, e.g. `DEBUGINFOD_URLS` to make it forward misses to
    /// symhub (elfutils' federation).
    pub fn start_with_env(dir_to_index: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("debuginfod.log");
        // A port that was free a moment ago; another process may take it before debuginfod
        // binds it, so a failed start is retried on a new one.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("debuginfod")
                .arg("-F")
                .arg(dir_to_index)
                .args(["-p", &port.to_string()])
                .arg("-d")
                .arg(dir.path().join("db.sqlite"))
                // Verbose access log; no rescans or grooming after the first traversal; one
                // scanner thread (the machine is shared).
                .args(["-v", "-t", "0", "-g", "0", "-c", "1"])
                .env_remove("DEBUGINFOD_URLS")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(std::fs::File::options().append(true).open(&log).unwrap())
                .spawn()
                .expect("debuginfod starts");
            let mut server = Self {
                url: format!("http://127.0.0.1:{port}"),
                port,
                child: Some(child),
                log: log.clone(),
                _dir: None,
            };
            if server.wait_scanned() {
                server._dir = Some(dir);
                return server;
            }
            server.kill();
        }
        panic!(
            "debuginfod did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Waits until the first traversal is done and every file it found was scanned (the
    /// scanners' work count reaches the traversal's file count, from `/metrics`). False if
    /// the process exited (its port was taken) or 30 s passed. The metrics must come from
    /// this process: the traversal thread id they report is one of its threads (another
    /// server may hold the port while this one fails to bind it).
    fn wait_scanned(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else {
                return false;
            };
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            let pid = child.id();
            if let Some((200, body)) = http_get(&self.url, "/metrics") {
                let text = String::from_utf8_lossy(&body);
                let metric = |name: &str| -> f64 {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                        .unwrap_or(0.0)
                };
                let tid = metric("thread_tid{role=\"traverse\"}");
                let ours = Path::new(&format!("/proc/{pid}/task/{tid}")).exists();
                let traversals = metric("thread_work_total{role=\"traverse\"}");
                let files = metric("traversed_total{type=\"file\"}");
                let scanned = metric("thread_work_total{role=\"scan\"}");
                if ours && traversals >= 1.0 && scanned >= files {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits until the server answers 200 for `buildid/<id>/debuginfo`; panics after 30 s.
    pub fn wait_for(&self, build_id: &str) {
        let path = format!("/buildid/{build_id}/debuginfo");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(http_get(&self.url, &path), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("debuginfod never served {path}:\n{}", self.log());
    }

    /// GET a path, byte for byte (no client-side normalization): status and body, `None` if
    /// the connection failed.
    pub fn get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        http_get(&self.url, path)
    }

    /// The server's stderr and stdout (with `-v`, one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, to simulate an outage: the port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ElfutilsDebuginfod {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET over loopback: the path is sent as given.
pub fn http_get(base_url: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let addr = base_url.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split(' ').nth(1)?.parse().ok()?;
    // libmicrohttpd sends Content-Length and closes; the body is the rest.
    Some((status, raw[end + 4..].to_vec()))
}

// ---------------------------------------------------------------------------------------------
// The clients

/// What `debuginfod-find` did. The client prints the path of the file in its cache, so the
/// cache directory lives as long as this value.
pub struct Found {
    pub output: std::process::Output,
    pub cache: tempfile::TempDir,
}

impl Found {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }

    /// The cached file's path, as printed on stdout.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(String::from_utf8_lossy(&self.output.stdout).trim())
    }

    /// The fetched file's bytes; panics with the client's output if it failed.
    pub fn bytes(&self) -> Vec<u8> {
        assert!(self.ok(), "debuginfod-find failed:\n{}", self.describe());
        std::fs::read(self.path()).unwrap()
    }

    /// Exit status, stdout and stderr (verbose), for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{}\nstdout: {}\nstderr:\n{}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Environment every client gets: these servers only, a fresh cache (no file or remembered
/// miss from another test), a bounded wait, and nothing from the caller's environment
/// (headers files, size or time limits, progress output).
fn client_env(cmd: &mut Command, urls: &[&str], cache: &Path) {
    for var in [
        "DEBUGINFOD_PROGRESS",
        "DEBUGINFOD_HEADERS_FILE",
        "DEBUGINFOD_MAXSIZE",
        "DEBUGINFOD_MAXTIME",
        "DEBUGINFOD_RETRY_LIMIT",
        "DEBUGINFOD_VERBOSE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DEBUGINFOD_URLS", urls.join(" "))
        .env("DEBUGINFOD_CACHE_PATH", cache)
        .env("DEBUGINFOD_TIMEOUT", CLIENT_TIMEOUT.as_secs().to_string());
}

/// `debuginfod-find -v <args>` (e.g. `["debuginfo", id]`, `["source", id, "/abs/x.c"]`,
/// `["section", id, ".debug_info"]`) against `urls`, with a fresh `DEBUGINFOD_CACHE_PATH`.
pub fn debuginfod_find(urls: &[&str], args: &[&str]) -> Found {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("debuginfod-find");
    cmd.arg("-v").args(args);
    client_env(&mut cmd, urls, cache.path());
    let (status, stdout, stderr) = run_bounded(&mut cmd);
    Found {
        output: std::process::Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        },
        cache,
    }
}

/// gdb in batch mode listing `function` of `exe` with debuginfod on, against `urls` and a
/// fresh cache; returns stdout and stderr together.
///
/// So that everything gdb shows can only have come through debuginfod: `exe` is copied
/// alone into an empty directory (gdb would otherwise find `hello.debug` beside it through
/// `.gnu_debuglink`), the debug-file directory points nowhere, and `local_sources` (the
/// directory the DWARF names, which gdb would otherwise open directly) is rewritten to a
/// path that does not exist with `set substitute-path`. gdb 13 then asks debuginfod for the
/// source by the path the DWARF records. The settings go in with `-iex`: gdb loads the file
/// before it runs `-ex` commands, and would by then have asked whether to enable debuginfod
/// and, with no terminal, answered no.
pub fn gdb_list_with_debuginfod(
    urls: &[&str],
    exe: &Path,
    function: &str,
    local_sources: &Path,
) -> String {
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join(exe.file_name().unwrap());
    std::fs::copy(exe, &copy).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch"])
        .args(["-iex", "set debuginfod enabled on"])
        .args(["-iex", "set debug-file-directory /nonexistent-symhub-rig"])
        .arg("-iex")
        .arg(format!(
            "set substitute-path {} /nonexistent-symhub-rig",
            local_sources.display()
        ))
        .arg("-ex")
        .arg(format!("list {function}"))
        .arg(&copy)
        .current_dir(alone.path());
    client_env(&mut cmd, urls, cache.path());
    let (_, stdout, stderr) = run_bounded(&mut cmd);
    format!("{stdout}{stderr}")
}
