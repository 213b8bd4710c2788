#!/usr/bin/env python3
"""Measurement helper for bench/run (the bash script does the orchestration).

Subcommands:
  ports N                      print N free TCP ports on 127.0.0.1, one per line
  wrk NAME SERVER_PID -- WRK…  run wrk, sampling the server's RSS and CPU meanwhile;
                               append one JSON result line to $BENCH_RESULTS
  curl NAME URL SIZE           one curl download; append TTFB/total as JSON to $BENCH_RESULTS
  summary RESULTS_JSONL        print the final plain-text table

Only the standard library is used, so nothing has to be installed from PyPI.
"""

import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


# ---------------------------------------------------------------- /proc sampling

def proc_tree(pid):
    """pid plus all its descendants (nginx: master + workers; symhub: just itself)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    """utime+stime of the given processes (all their threads), in clock ticks."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def host_busy_ticks():
    """(busy, irq) clock ticks of the whole machine (all CPUs), from /proc/stat.

    irq+softirq is kept apart: on loopback much of the TCP work runs in softirq context,
    which the kernel may account to no process at all.
    """
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, irq + softirq


def status_kib(pid, field):
    """A 'VmRSS:'/'VmHWM:' style field of /proc/PID/status, in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib_tree(pids):
    return sum(status_kib(p, "VmRSS") for p in pids)


class Sampler(threading.Thread):
    """Samples the server's RSS every 100 ms while wrk runs; remembers the maximum.

    VmHWM alone would be the peak since the process started (i.e. it can't tell which
    run caused it), so we take our own per-run maximum of VmRSS.
    """

    def __init__(self, pids, interval=0.1):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.max_kib, self.samples = 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.max_kib = max(self.max_kib, rss_kib_tree(self.pids))
            self.samples += 1
            self.stop.wait(self.interval)


def append_result(rec):
    path = os.environ["BENCH_RESULTS"]
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------- subcommands

def cmd_ports(n):
    # Bind all sockets at once so the N ports are distinct; the tiny window between
    # closing them and the servers binding them is acceptable for a benchmark.
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
        s.close()


# bench/report.lua prints this line from wrk's done() hook: exact counters rather than
# the rounded human-readable numbers of wrk's normal output.
REPORT_RE = re.compile(r"^BENCH_REPORT (\{.*\})$", re.M)


def cmd_wrk(name, server_pid, wrk_argv):
    server_pid = int(server_pid)
    pids = proc_tree(server_pid)
    is_symhub = len(pids) == 1
    cpu0, host0 = cpu_ticks(pids), host_busy_ticks()
    sampler = Sampler(pids)
    sampler.start()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(wrk_argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.stop.set()
    sampler.join()
    cpu1, host1 = cpu_ticks(pids), host_busy_ticks()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    m = REPORT_RE.search(proc.stdout)
    if proc.returncode != 0 or not m:
        sys.exit(f"helper: wrk failed for {name} (rc={proc.returncode})")
    rep = json.loads(m.group(1))
    secs = rep["duration_us"] / 1e6
    wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    rec = {
        "kind": "wrk",
        "name": name,
        "requests": rep["requests"],
        "bytes": rep["bytes"],
        "seconds": secs,
        "rps": rep["requests"] / secs,
        "mib_s": rep["bytes"] / secs / MIB,
        "errors": rep["errors"],
        "latency_p50_ms": rep["p50_us"] / 1000,
        "latency_p99_ms": rep["p99_us"] / 1000,
        # CPU use in "cores" (1.0 = one core fully busy) over the wrk run.
        "server_cores": (cpu1 - cpu0) / CLK_TCK / wall,
        "wrk_cores": wrk_cpu / wall,
        # Whole machine; what is neither server nor wrk is other load on the host (or
        # kernel work not charged to either process), which disturbs the comparison.
        "host_cores": (host1[0] - host0[0]) / CLK_TCK / wall,
        "irq_cores": (host1[1] - host0[1]) / CLK_TCK / wall,
        "rss_max_mib": sampler.max_kib / 1024,
        "rss_samples": sampler.samples,
        "hwm_mib": status_kib(server_pid, "VmHWM") / 1024 if is_symhub else None,
    }
    append_result(rec)
    print(
        f"  -> {rec['rps']:.0f} req/s, {rec['mib_s']:.1f} MiB/s, server {rec['server_cores']:.2f} "
        f"cores, wrk {rec['wrk_cores']:.2f} cores, whole host {rec['host_cores']:.2f} cores "
        f"(irq {rec['irq_cores']:.2f}), server RSS max {rec['rss_max_mib']:.1f} MiB"
    )


def cmd_curl(name, url, expected_bytes):
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null",
         "-w", "%{http_code} %{time_starttransfer} %{time_total} %{size_download}", url],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    code, ttfb, total, size = int(out[0]), float(out[1]), float(out[2]), int(out[3])
    rec = {"kind": "curl", "name": name, "code": code, "ttfb_s": ttfb, "total_s": total, "bytes": size}
    if size != int(expected_bytes):
        sys.exit(f"helper: {url}: got {size} bytes, expected {expected_bytes}")
    append_result(rec)
    print(f"  {name}: HTTP {code}, {size} bytes, TTFB {ttfb*1000:.1f} ms, total {total*1000:.1f} ms")


# ---------------------------------------------------------------- summary table

def ratio(a, b):
    return a / b if b else float("nan")


def cpu_us_per_req(rec):
    """Server CPU time per request (wall ≈ wrk's duration)."""
    return rec["server_cores"] * rec["seconds"] / rec["requests"] * 1e6 if rec["requests"] else 0.0


def other(rec):
    return max(0.0, rec["host_cores"] - rec["server_cores"] - rec["wrk_cores"] - rec["irq_cores"])


def verdict(r, target=0.9):
    return "ok" if r >= target else f"BELOW {target:.1f}x"


def load_records(path):
    """The measurements of one run (results.jsonl): run metadata, wrk runs by name, and the
    curl runs of each name."""
    recs = [json.loads(l) for l in open(path) if l.strip()]
    meta = {}
    for r in recs:
        if r["kind"] == "meta":
            meta.update(r)
    wrk = {r["name"]: r for r in recs if r["kind"] == "wrk"}
    curls = {}
    for r in recs:
        if r["kind"] == "curl":
            curls.setdefault(r["name"], []).append(r)
    return meta, wrk, curls


def cmd_summary(path):
    meta, wrk, curls = load_records(path)

    lines = []
    add = lines.append
    add("symhub benchmark results")
    add("=" * 100)
    for k in ("date", "host", "cpus", "symhub", "nginx", "wrk", "nginx_workers", "small", "big",
              "debuginfod", "symbolicate"):
        if k in meta:
            add(f"{k:<14} {meta[k]}")
    add("")
    add("Cached throughput (wrk; same threads/connections/duration against both servers)")
    hdr = f"{'measure':<34}{'nginx':>12}{'symhub':>12}{'ratio':>8}  {'target ≥0.9x':<13}{'notes'}"
    add(hdr)
    add("-" * 100)
    cases = [
        ("small", "10 KiB file, req/s", "rps", "%.0f"),
        ("negative", "negative entry (404), req/s", "rps", "%.0f"),
        ("big", "100 MiB file, MiB/s", "mib_s", "%.1f"),
        ("debuginfod", "debuginfod hit, 6 KiB ELF, req/s", "rps", "%.0f"),
        ("symbolicate", "warm symbolicate/v5 ¹, req/s", "rps", "%.0f"),
    ]
    for key, label, field, fmt in cases:
        n, s = wrk.get(f"nginx-{key}"), wrk.get(f"symhub-{key}")
        if not n or not s:
            add(f"{label:<34}{'(missing)':>12}")
            continue
        r = ratio(s[field], n[field])
        notes = []
        for who, rec in (("nginx", n), ("symhub", s)):
            e = rec["errors"]
            bad = e["connect"] + e["read"] + e["write"] + e["timeout"]
            # The negative case is *meant* to answer 404, so wrk's non-2xx count is expected.
            if key != "negative" and e["status"]:
                bad += e["status"]
            if bad:
                notes.append(f"{who}: {bad} errors {e}")
        add(f"{label:<34}{fmt % n[field]:>12}{fmt % s[field]:>12}{r:>7.2f}x  {verdict(r):<13}{'; '.join(notes)}")
    add("¹ symhub symbolicates 50 frames of a parsed module; nginx serves the same answer as a")
    add("  static file: the cost of symbolication over sending its bytes.")
    add("")
    add("Detail per wrk run")
    add(f"{'run':<17}{'wrk args':<10}{'requests':>9}{'p50 ms':>8}{'p99 ms':>8}{'srv cpu':>8}"
        f"{'µs/req':>8}{'wrk cpu':>8}{'irq':>6}{'other':>6}{'host':>6}{'RSS MiB':>9}")
    add("-" * 100)
    for key, _, _, _ in cases:
        for who in ("nginx", "symhub"):
            rec = wrk.get(f"{who}-{key}")
            if not rec:
                continue
            add(f"{who + '-' + key:<17}{meta.get('wrk_args_' + key, ''):<10}{rec['requests']:>9}"
                f"{rec['latency_p50_ms']:>8.2f}{rec['latency_p99_ms']:>8.2f}{rec['server_cores']:>8.2f}"
                f"{cpu_us_per_req(rec):>8.1f}{rec['wrk_cores']:>8.2f}{rec['irq_cores']:>6.2f}"
                f"{other(rec):>6.2f}{rec['host_cores']:>6.2f}{rec['rss_max_mib']:>9.1f}")
    add(f"CPU columns are cores busy on average (1.00 = one core; this host has {meta.get('cpus', '?')},")
    add("shared by wrk and the server). µs/req = server CPU time per request. irq = irq+softirq")
    add("time of the whole host (much loopback TCP work lands there); other = host - srv - wrk - irq,")
    add("i.e. other processes. RSS = max VmRSS sampled every 100 ms (nginx: master + workers).")
    noisy = [n for n, r in wrk.items() if other(r) > 0.25]
    if noisy:
        add(f"WARNING: other load above 0.25 cores during {', '.join(sorted(noisy))}: "
            "those numbers are disturbed; rerun on an idle machine.")
    add("")
    add("symhub memory (target: peak RSS < 64 MiB during the 100 MiB run)")
    add("-" * 100)
    for key, label, _, _ in cases:
        rec = wrk.get(f"symhub-{key}")
        if rec:
            extra = ""
            if key == "big":
                extra = "  ok" if rec["rss_max_mib"] < 64 else "  ABOVE 64 MiB"
            add(f"{'max VmRSS during ' + key + ' run':<34}{rec['rss_max_mib']:>10.1f} MiB{extra}")
    hwm = [r["hwm_mib"] for r in wrk.values() if r.get("hwm_mib")]
    if hwm:
        add(f"{'VmHWM (peak since start) at end':<34}{max(hwm):>10.1f} MiB")
    add("")

    def cold_block(title, direct_name, miss_name, refs=()):
        """refs: (result name, label) of other proxies fetching the same keys."""
        d, m = curls.get(direct_name, []), curls.get(miss_name, [])
        if not d or not m:
            return
        refs = [(curls[n], label) for n, label in refs if curls.get(n)]
        add(title)
        head = f"{'median of ' + str(len(d)) + ' runs':<34}{'direct':>12}{'via symhub':>12}{'ratio':>8}"
        for _, label in refs:
            head += f"{label:>14}{'symhub/it':>10}"
        add(head)
        add("-" * 100)
        for field, label in (("ttfb_s", "time to first byte, ms"), ("total_s", "total time, ms")):
            dv = statistics.median(r[field] for r in d) * 1000
            mv = statistics.median(r[field] for r in m) * 1000
            row = f"{label:<34}{dv:>12.1f}{mv:>12.1f}{ratio(mv, dv):>7.2f}x"
            for runs, _ in refs:
                rv = statistics.median(r[field] for r in runs) * 1000
                row += f"{rv:>14.1f}{ratio(mv, rv):>9.2f}x"
            add(row)
        def total(runs):
            return statistics.median(r["total_s"] for r in runs)

        if refs:
            # What each reference costs over a direct download: the floor for symhub's ratio.
            add(f"{'total time / direct':<34}{'':>32}" + "".join(
                f"{ratio(total(runs), total(d)):>13.2f}x{'':>10}" for runs, _ in refs))
        add(f"{'effective MiB/s':<34}{d[0]['bytes']/total(d)/MIB:>12.1f}"
            f"{m[0]['bytes']/total(m)/MIB:>12.1f}{'':>8}" + "".join(
                f"{runs[0]['bytes']/total(runs)/MIB:>14.1f}" for runs, _ in refs))

        def listed(name, rs):
            return f"{name} " + ", ".join(f"{r['ttfb_s']*1000:.1f}/{r['total_s']*1000:.1f}" for r in rs)

        add("  all runs (ttfb/total ms): " + " | ".join(
            [listed("direct", d), listed("symhub", m)] + [listed(label, rs) for rs, label in refs]))
        add("")

    cold_block("Cold miss, 100 MiB, fresh key per run (curl; upstream = nginx, unthrottled)",
               "direct-fast", "miss-fast",
               (("nginx-cache-fast", "nginx cache"), ("nginx-relay-fast", "nginx relay"),
                ("write-relay-fast", "write relay")))
    cold_block(f"Cold miss, 100 MiB, fresh key per run (curl; upstream = nginx with limit_rate "
               f"{meta.get('limit_rate', '?')})", "direct-slow", "miss-slow")
    add(f"symhub ratio = symhub / nginx (higher is better for throughput); cold-miss ratio = "
        f"via symhub / direct (1.00x = no overhead).")
    add("nginx cache = nginx proxy_cache in front of the same upstream, its own first miss of the "
        "key;")
    add("nginx relay = nginx proxy_pass with proxy_buffering off: streams, writes no file;")
    add("write relay = bench/write_relay.rs: streams and writes the file, nothing else (no index, "
        "hash, fsync). symhub/it < 1 = symhub faster.")

    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    return text


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "ports":
        cmd_ports(argv[2])
    elif cmd == "wrk":
        sep = argv.index("--")
        cmd_wrk(argv[2], argv[3], argv[sep + 1:])
    elif cmd == "curl":
        cmd_curl(argv[2], argv[3], argv[4])
    elif cmd == "meta":
        # meta KEY=VALUE…: facts about the run, shown in the table header.
        append_result({"kind": "meta", **dict(a.split("=", 1) for a in argv[2:])})
    elif cmd == "summary":
        cmd_summary(argv[2])
    else:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
