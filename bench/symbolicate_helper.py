"""Helpers of bench/symbolicate: synthetic Breakpad .sym modules and the /symbolicate/v5
job over them (with the answer each frame must get), the generated C++ for the big PDB,
the frames of a stackwalk, an HTTP client that times requests, /proc readers for a
server's children, and percentiles. Standard library only (Python 3.11).
"""
import http.client
import json
import os
import random
import resource
import statistics
import sys
import threading
import time

MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import helper  # noqa: E402  (bench/helper.py: /proc readers shared by the benches)


# ---------------------------------------------------------------------------- .sym modules

class SymModule:
    """One synthetic Breakpad module: its text after the MODULE line (the same for every
    copy), and what a few addresses in it must symbolicate to."""

    def __init__(self, k, seed):
        r = random.Random(seed)
        self.k = k
        self.windows = k % 2 == 0
        self.debug_file = f"benchmod{k}.pdb" if self.windows else f"libbenchmod{k}.so"
        self.sym_name = f"benchmod{k}.sym" if self.windows else f"libbenchmod{k}.so.sym"
        self.code_file = f"benchmod{k}.dll" if self.windows else None
        # Sizes vary from about 50 KiB to a few MiB: 400 to ~12,000 functions.
        nfunc = int(400 * (30 ** (k / 19)))
        nfiles = max(10, nfunc // 20)
        files = [f"/build/benchmod{k}/src/dir{i % 17}/source_file_{i}.cpp" for i in range(nfiles)]
        lines = [""]   # placeholder for the INFO line
        if self.windows:
            lines[0] = f"INFO CODE_ID {r.getrandbits(48):X} {self.code_file}"
        else:
            lines.pop()
        lines += [f"FILE {i} {f}" for i, f in enumerate(files)]
        addr = 0x1000
        self.funcs = []   # (address, size, name, [(address, size, line, file index)])
        for i in range(nfunc):
            size = r.randint(0x20, 0x400)
            name = (f"benchmod{k}::ns{i % 13}::Class{i % 101}::method_number_{i}"
                    f"(int, {r.choice(['char const*', 'std::string const&', 'long'])})")
            nlines = r.randint(2, 25)
            step = size // nlines
            fidx, first = r.randrange(nfiles), r.randint(1, 4000)
            recs = []
            for j in range(nlines):
                a = addr + j * step
                s = step if j < nlines - 1 else size - j * step
                recs.append((a, s, first + j * r.randint(1, 3), fidx))
            self.funcs.append((addr, size, name, recs))
            lines.append(f"FUNC {addr:x} {size:x} 0 {name}")
            lines += [f"{a:x} {s:x} {ln} {fi}" for a, s, ln, fi in recs]
            addr += size + r.choice([0, 0, 0x10])
        # PUBLIC symbols after the last function (no FUNC there: a frame gets the name only).
        self.publics = []
        for i in range(max(20, nfunc // 10)):
            self.publics.append((addr, f"benchmod{k}_exported_symbol_{i}"))
            lines.append(f"PUBLIC {addr:x} 0 benchmod{k}_exported_symbol_{i}")
            addr += r.randint(0x40, 0x200)
        self.end = addr
        self.body = ("\n".join(lines) + "\n").encode()
        self.rand = random.Random(seed + 1)

    def text(self, debug_id):
        os_, arch = ("windows", "x86_64") if self.windows else ("Linux", "x86_64")
        return f"MODULE {os_} {arch} {debug_id} {self.debug_file}\n".encode() + self.body

    def frames(self, n):
        """n (offset, expected frame fields): n-1 in functions, one in the PUBLIC area."""
        out = []
        for _ in range(n - 1):
            addr, size, name, recs = self.rand.choice(self.funcs)
            off = addr + self.rand.randrange(size)
            a, s, line, fidx = next(rc for rc in recs if rc[0] <= off < rc[0] + rc[1])
            out.append((off, {"function": name, "function_offset": hex(off - addr),
                              "line": line, "file_index": fidx}))
        i = self.rand.randrange(len(self.publics) - 1)
        addr, name = self.publics[i]
        off = addr + self.rand.randrange(self.publics[i + 1][0] - addr)
        out.append((off, {"function": name, "function_offset": hex(off - addr)}))
        return out

    def file_name(self, fidx):
        # The same formula as __init__'s list.
        return f"/build/benchmod{self.k}/src/dir{fidx % 17}/source_file_{fidx}.cpp"


def debug_id(r):
    return f"{r.getrandbits(128):032X}{r.choice('01')}"


def write_sym(www, module, did):
    d = os.path.join(www, module.debug_file, did)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, module.sym_name)
    with open(path, "wb") as f:
        f.write(module.text(did))
    return path


def v5_frames(modules, frames_per_module, seed):
    """The frames of a job over `modules`, interleaved across modules: [(module index,
    offset, expected fields)…]."""
    r = random.Random(seed)
    frames = []
    for i, m in enumerate(modules):
        frames += [(i, off, exp) for off, exp in m.frames(frames_per_module)]
    r.shuffle(frames)
    return frames


def v5_body(modules, ids, frames):
    """A one-job /symbolicate/v5 body: one stack of `frames` over `modules` with `ids`."""
    return json.dumps({"jobs": [{"memoryMap": [[m.debug_file, did] for m, did in zip(modules, ids)],
                                 "stacks": [[[i, off] for i, off, _ in frames]]}]}).encode()


def check_v5(answer, modules, ids, frames):
    """Problems with a v5 answer, as strings (empty: it is right)."""
    bad = []
    try:
        res = answer["results"][0]
        stack = res["stacks"][0]
    except (KeyError, IndexError, TypeError):
        return [f"no results[0].stacks[0] in {str(answer)[:200]}"]
    for m, did in zip(modules, ids):
        if res["found_modules"].get(f"{m.debug_file}/{did}") is not True:
            bad.append(f"found_modules[{m.debug_file}/{did}] = "
                       f"{res['found_modules'].get(f'{m.debug_file}/{did}')!r}")
    if len(stack) != len(frames):
        return bad + [f"{len(stack)} frames, expected {len(frames)}"]
    for n, (got, (i, off, exp)) in enumerate(zip(stack, frames)):
        m = modules[i]
        want = {"frame": n, "module": m.code_file or m.debug_file, "module_offset": hex(off),
                "function": exp["function"], "function_offset": exp["function_offset"]}
        if "line" in exp:
            want["file"], want["line"] = m.file_name(exp["file_index"]), exp["line"]
        if got != want:
            bad.append(f"frame {n}: got {got}, expected {want}")
    return bad


# ---------------------------------------------------------------------------- the big PDB

def cpp_module(mod, nfunc, seed):
    """C++ source of `nfunc` functions, each with its own struct type, locals, a loop and
    calls, in nested namespaces (long decorated names): about 2 KiB of PDB per function
    with clang-cl /Z7 /Od. No library calls: links with /nodefaultlib."""
    r = random.Random(seed)
    out = [f"// bench/symbolicate generated module {mod}", "namespace symhub_bench_generated {",
           f"namespace module_{mod}_detail_namespace {{"]
    for i in range(nfunc):
        fields = "\n".join(
            f"    {r.choice(['int', 'long long', 'double', 'unsigned'])} field_{j}_with_a_descriptive_name_{i};"
            for j in range(r.randint(4, 12)))
        out.append(f"struct Record_{mod}_{i}_state {{\n{fields}\n    Record_{mod}_{i}_state *next;\n}};")
        body = [f"    long long local_value_{j} = a * {r.randint(1, 99)} + b;"
                for j in range(r.randint(3, 8))]
        body += ["    for (int k = 0; k < n; k++) {",
                 f"        if (p) {{ p->field_0_with_a_descriptive_name_{i} += (int)local_value_0; p = p->next; }}",
                 f"        a += k ^ {r.randint(1, 1000)};",
                 "    }"]
        if i and r.random() < 0.5:
            body.append(f"    b += compute_something_interesting_for_record_{r.randrange(i)}(a, b, n - 1, nullptr);")
        body.append("    return a + b + local_value_0;")
        out.append(f"long long compute_something_interesting_for_record_{i}(long long a, long long b, "
                   f"int n, Record_{mod}_{i}_state *p) {{\n" + "\n".join(body) + "\n}")
    out.append("}}")
    out.append(f'extern "C" long long entry_{mod}(long long x) {{ return symhub_bench_generated::'
               f'module_{mod}_detail_namespace::compute_something_interesting_for_record_0(x, 1, 2, nullptr); }}')
    return "\n".join(out) + "\n"


def sym_facts(path):
    """(MODULE line, number of FUNC records, lines but INFO GENERATOR) of a .sym."""
    module, funcs, n = None, 0, 0
    with open(path, "rb") as f:
        for line in f:
            if module is None:
                module = line.decode().strip()
            funcs += line.startswith(b"FUNC ")
            n += not line.startswith(b"INFO GENERATOR")
    return module, funcs, n


# ---------------------------------------------------------------------------- stackwalks

FRAME_FIELDS = ("module", "function", "file", "line")


def frames_of(stackwalk):
    """[(thread index, [(module, function, file, line)…])…] of a stackwalk's JSON."""
    return [(i, [tuple(f.get(k) for k in FRAME_FIELDS) for f in t.get("frames", [])])
            for i, t in enumerate(stackwalk.get("threads", []))]


def frame_diff(a, b):
    """The first difference between two frames_of() results, or None."""
    if len(a) != len(b):
        return f"{len(a)} threads against {len(b)}"
    for (i, fa), (_, fb) in zip(a, b):
        if len(fa) != len(fb):
            return f"thread {i}: {len(fa)} frames against {len(fb)}"
        for n, (x, y) in enumerate(zip(fa, fb)):
            if x != y:
                return f"thread {i} frame {n}: {x} against {y}"
    return None


# ---------------------------------------------------------------------------- HTTP

class Client:
    """One kept-alive HTTP/1.1 connection; request() returns (seconds, status, body)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            return time.perf_counter() - t0, resp.status, data
        raise AssertionError("unreachable")


def run_parallel(n_clients, items, fn):
    """Runs fn(client index, item) over items with n_clients threads; returns wall seconds
    and the results in item order."""
    out = [None] * len(items)
    nxt = iter(range(len(items)))
    lock = threading.Lock()
    errors = []

    def worker(c):
        while True:
            with lock:
                i = next(nxt, None)
            if i is None or errors:
                return
            try:
                out[i] = fn(c, items[i])
            except BaseException as e:   # noqa: BLE001 (reported below)
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, out


def pct(values, p):
    """The p-th percentile (nearest rank) of values."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * len(v) + 0.5) - 1))]


def lat_stats(secs):
    ms = [s * 1000 for s in secs]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "mean_ms": statistics.fmean(ms), "max_ms": max(ms)}


# ---------------------------------------------------------------------------- /proc

def children(pid):
    """Child pids of every thread of pid (/proc/PID/task/TID/children)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


status_kib = helper.status_kib


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


class ChildWatch(threading.Thread):
    """Every `interval` s: the server's children running `dump-syms`, the last VmHWM read of
    each (VmHWM only grows, so the last read before it exits is its peak but for the last
    interval), when each was first and last seen, and the server's own VmRSS maximum."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.kids = {}   # pid -> {"hwm_kib", "first", "last"}
        self.server_rss_kib = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            self.server_rss_kib = max(self.server_rss_kib, status_kib(self.pid, "VmRSS"))
            for c in children(self.pid):
                if b"dump-syms" not in cmdline(c):
                    continue
                hwm = status_kib(c, "VmHWM")
                k = self.kids.setdefault(c, {"hwm_kib": 0, "first": now, "last": now})
                if hwm:
                    k["hwm_kib"], k["last"] = max(k["hwm_kib"], hwm), now
            self.stop.wait(self.interval)


class Load:
    """Where the CPU went during a run, in cores (1.0 = one core busy): this Python process
    (the client threads), the children it waited for (minidump-stackwalk processes), the
    servers (pids and their descendants), and `other`: the rest of the host (other
    processes: the numbers were disturbed when it is high)."""

    def __init__(self, server_pids):
        self.server_pids = server_pids
        self.t0 = time.perf_counter()
        self.host0 = helper.host_busy_ticks()[0]
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.srv0 = self._srv()

    def _srv(self):
        """Ticks of the servers, their live descendants, and their waited-for children (a
        dump-syms child that has exited is counted in its parent's cutime/cstime)."""
        ticks = helper.cpu_ticks([p for pid in self.server_pids for p in helper.proc_tree(pid)])
        for pid in self.server_pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    v = f.read().rsplit(")", 1)[1].split()
                ticks += int(v[13]) + int(v[14])
            except (OSError, IndexError, ValueError):
                pass
        return ticks

    def end(self):
        wall = time.perf_counter() - self.t0
        cpu = lambda a, b: (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)  # noqa: E731
        client = cpu(self.self0, resource.getrusage(resource.RUSAGE_SELF))
        kids = cpu(self.kids0, resource.getrusage(resource.RUSAGE_CHILDREN))
        srv = (self._srv() - self.srv0) / helper.CLK_TCK
        host = (helper.host_busy_ticks()[0] - self.host0) / helper.CLK_TCK
        return {"wall_s": wall, "client_cpu_s": client, "children_cpu_s": kids, "servers_cpu_s": srv,
                "host_cores": host / wall, "other_cores": max(0.0, host - client - kids - srv) / wall}


# ---------------------------------------------------------------------------- summary

def summary(results, meta, conf):
    """The plain-text summary of a run's records."""
    DUMPS, NCPU = conf["DUMPS"], conf["NCPU"]
    PDB_MODULES, PDB_FUNCS = conf["PDB_MODULES"], conf["PDB_FUNCS"]
    L = []
    add = L.append
    W = 100
    add("symhub symbolication benchmark (bench/symbolicate)")
    add("=" * W)
    for k, v in meta.items():
        add(f"{k:<19}{v}")
    add("")
    md = [r for r in results if r["kind"] == "minidump"]
    chk = [r for r in results if r["kind"] == "minidump-check"]
    add(f"1. Minidumps, warm symbols: {DUMPS} dumps (the 2 fixtures in turn) per run")
    add(f"{'clients':<8}{'stackwalk':>10}{'symhub':>9}{'ratio':>8}{'CPU ms per dump:':>19}"
        f"{'symhub':>7}{'client':>7}{'symhub':>8}{'other cores':>13}")
    add(f"{'':<8}{'dumps/s':>10}{'dumps/s':>9}{'':>8}{'stackwalk':>19}{'srv':>7}{'(py)':>7}"
        f"{'VmHWM':>8}{'stkw/symhub':>13}")
    add("-" * W)
    for r in md:
        add(f"{r['clients']:<8}{r['binary_dumps_s']:>10.1f}{r['symhub_dumps_s']:>9.1f}"
            f"{r['symhub_dumps_s'] / r['binary_dumps_s']:>7.2f}x{r['binary_cpu_ms']:>19.2f}"
            f"{r['symhub_cpu_ms']:>7.2f}{r['client_cpu_ms']:>7.2f}{r['symhub_hwm_kib'] / 1024:>4.0f} MiB"
            f"{r['load_binary']['other_cores']:>8.2f}/{r['load_symhub']['other_cores']:.2f}")
    for r in chk:
        add(f"  {r['dump']}: {r['threads']} threads, {r['frames']} frames; module/function/file/line "
            f"of every frame = minidump-stackwalk's; whole `threads` "
            f"{'identical' if r['threads_identical'] else 'differ in other fields'}")
    ident = next(r for r in results if r["kind"] == "minidump-bytes")
    add("  symhub's timed answers byte-identical to its first answer of that dump: " + ", ".join(
        f"{n} {k} of {ident['each']}" for n, k in ident["identical_answers"].items())
        + " (the others' frames were compared)")
    add("  ratio = symhub / minidump-stackwalk dumps/s (higher is better). stackwalk CPU = the")
    add("  processes' user+sys (one per dump, reads its warm --symbols-cache); symhub srv = the")
    add("  server's; the Python client's CPU is in neither. VmHWM = server peak RSS since start.")
    add("")
    v5 = {r["name"]: r for r in results if r["kind"] == "v5"}
    mods = next(r for r in results if r["kind"] == "v5-modules")
    mem = next(r for r in results if r["kind"] == "v5-memory")
    add(f"2. /symbolicate/v5: one job, 100 frames over 20 modules ({mods['sym_bytes'] / MIB:.1f} MiB "
        f"of .sym, {min(mods['sizes']) / 1024:.0f} KiB to {max(mods['sizes']) / MIB:.1f} MiB), one client")
    add(f"{'case':<48}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>8}{'vs ref':>8}{'other':>6}")
    add("-" * W)
    rows = [("warm (parsed modules in memory)", "warm", "floor-10k-get"),
            ("  ref: GET of a cached 10 KiB file from symhub", "floor-10k-get", None),
            ("cold (20 modules never seen: fetch + parse)", "cold", "download-par8"),
            ("  ref: GET of the 20 .sym from nginx, 8 at a time", "download-par8", None),
            ("  ref: GET of the 20 .sym from nginx, 1 at a time", "download-seq", None),
            ("first request of the warm ids (cold too)", "first", None)]
    for label, name, ref in rows:
        r = v5[name]
        vs = f"{r['p50_ms'] / v5[ref]['p50_ms']:.1f}x" if ref else ""
        other = f"{r['load']['other_cores']:.2f}" if r.get("load") else ""
        add(f"{label:<48}{r['n']:>5}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['mean_ms']:>9.2f}"
            f"{1000 / r['mean_ms']:>8.1f}{vs:>8}{other:>6}")
    add(f"  warm with 2 clients: {v5['warm']['rps_2clients']:.0f} req/s. vs ref = p50 / the ref's p50 "
        f"(lower is better). symhub fetches a request's modules 8 at a time.")
    add(f"  cold: symhub's log says the 20 parses took {mem['cold_parse_ms_per_request']:.0f} ms per request "
        f"summed ({mem['cold_modules_parsed']} parses; they overlap, 8 at a time on {NCPU} cores).")
    add(f"  symhub VmHWM: {mem['hwm_warm_kib'] / 1024:.0f} MiB after the warm runs, "
        f"{mem['hwm_cold_kib'] / 1024:.0f} MiB after the cold ones (parsed cache: 512 MiB of .sym).")
    add("")
    p = next(r for r in results if r["kind"] == "pdb")
    add(f"3. On-demand .sym of a {p['pdb_bytes'] / MIB:.0f} MiB PDB ({PDB_MODULES}x{PDB_FUNCS} generated "
        f"C++ functions; .sym {p['sym_bytes'] / MIB:.0f} MiB, {p['funcs']} FUNC)")
    add(f"{'run':<52}{'wall s':>8}{'CPU s':>7}{'peak RSS MiB':>14}{'vs dump_syms':>13}{'other':>6}")
    add("-" * W)
    best = min(r["wall_s"] for r in p["dump_syms"])
    for k in ("dump_syms", "symhub dump-syms"):
        for i, r in enumerate(p[k]):
            label = f"{k}{' --inlines' if k == 'dump_syms' else ''} (direct, /usr/bin/time) #{i + 1}"
            add(f"{label:<52}{r['wall_s']:>8.2f}{r['cpu_s']:>7.2f}{r['maxrss_kib'] / 1024:>14.0f}"
                f"{r['wall_s'] / best:>12.2f}x{r['other_cores']:>6.2f}")
    for i, r in enumerate(p["ondemand"]):
        add(f"{'GET .sym from a fresh symhub (PDB from nginx) #' + str(i + 1):<52}{r['wall_s']:>8.2f}{'':>7}"
            f"{r['child_hwm_kib'] / 1024:>14.0f}{r['wall_s'] / best:>12.2f}x{r['other_cores']:>6.2f}")
        add(f"    child seen {r['child_seen_s']:.2f} s; server VmHWM {r['server_hwm_kib'] / 1024:.0f} MiB; "
            f"the same GET again (cached): {r['again_ms']:.1f} ms")
    add(f"  the PDB alone: {p['download_s'] * 1000:.0f} ms from nginx, {p['pdb_miss_s'] * 1000:.0f} ms through a "
        f"fresh symhub (cold miss). vs dump_syms = wall / dump_syms' best.")
    add("  On-demand peak RSS = the dump-syms child's VmHWM, polled every 10 ms. dump_syms is best")
    add("  of the direct runs; 'other' = cores used by other processes meanwhile.")
    add(f"  served .sym: same MODULE line and FUNC count as dump_syms'; symhub dump-syms' file is "
        f"{p['direct_vs_dump_syms']}.")
    if p["build_s"]:
        add(f"  PDB built in {p['build_s']:.0f} s (cached for later runs).")
    others = [r["load_binary"]["other_cores"] for r in md] + [r["load_symhub"]["other_cores"] for r in md] \
        + [r["load"]["other_cores"] for r in v5.values() if r.get("load")] \
        + [r["other_cores"] for k in ("dump_syms", "symhub dump-syms", "ondemand") for r in p[k]]
    add("")
    add(f"other load (cores busy with other processes) over the runs: {min(others):.2f} to {max(others):.2f}")
    if max(others) > 0.25:
        add("WARNING: other processes used more than 0.25 cores during some runs: those numbers are "
            "disturbed; compare ratios, rerun on an idle machine.")
    return "\n".join(L) + "\n"
