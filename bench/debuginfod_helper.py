#!/usr/bin/env python3
"""Helper for bench/debuginfod (the bash script does the orchestration).

The measurements themselves (wrk with /proc sampling, curl, free ports, meta lines) are
bench/helper.py's; this adds what is specific to the debuginfod comparison:

  wait-scanned URL PID         wait until elfutils' debuginfod (process PID) has finished its
                               first traversal and scanned every file it found (/metrics)
  upload URL KEY FILE NAME ID  sym-upload v2 of FILE to symhub as DEBUG_ONLY (create, PUT,
                               complete), NAME = debug_file, ID = build id
  summary RESULTS_JSONL        print the table: measure | elfutils | symhub | ratio

Only the standard library is used.
"""

import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import MIB, cpu_us_per_req, load_records, other  # noqa: E402  (bench/helper.py)


# ---------------------------------------------------------------- elfutils' first scan

def cmd_wait_scanned(url, pid, timeout=60.0):
    """As the e2e rig does (tests/e2e/elf_support.rs): the first traversal is done and the
    scanners' work count has reached the number of files it found. The traversal thread's id
    must be a thread of PID, so the metrics are this server's and not another's on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            sys.exit("debuginfod_helper: elfutils' debuginfod exited (port taken?)")
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            time.sleep(0.1)
            continue

        def metric(name):
            for line in text.splitlines():
                if line.startswith(name):
                    try:
                        return float(line[len(name):].strip())
                    except ValueError:
                        pass
            return 0.0

        tid = int(metric('thread_tid{role="traverse"}'))
        files = metric('traversed_total{type="file"}')
        if (os.path.exists(f"/proc/{pid}/task/{tid}")
                and metric('thread_work_total{role="traverse"}') >= 1
                and files >= 1
                and metric('thread_work_total{role="scan"}') >= files):
            scanned_mib = metric('scanned_bytes_total{source="file"}') / MIB
            print(f"  elfutils' scan done: {files:.0f} files, {scanned_mib:.1f} MiB scanned")
            return
        time.sleep(0.1)
    sys.exit(f"debuginfod_helper: elfutils' debuginfod did not finish its scan in {timeout:.0f} s")


# ---------------------------------------------------------------- sym-upload v2

def post_json(url, body=b""):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        sys.exit(f"debuginfod_helper: POST {url.split('?')[0]}: {e.code} {e.read().decode(errors='replace')}")


def cmd_upload(url, key, path, name, build_id):
    """sym-upload v2, as sym_upload -p sym-upload-v2 -t DEBUG_ONLY does it (and as
    tests/e2e/debuginfod.rs does): uploads:create, PUT of the bytes, :complete."""
    t0 = time.monotonic()
    created = post_json(f"{url}/v1/uploads:create?key={key}")
    upload_url, upload_key = created["uploadUrl"], created["uploadKey"]
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        req = urllib.request.Request(upload_url, data=f, method="PUT",
                                     headers={"Content-Length": str(size),
                                              "Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req) as r:
            r.read()
    body = json.dumps({"symbol_id": {"debug_file": name, "debug_id": build_id},
                       "symbol_upload_type": "DEBUG_ONLY"}).encode()
    result = post_json(f"{url}/v1/uploads/{upload_key}:complete?key={key}", body)
    print(f"  uploaded {name} ({size} bytes, build id {build_id}) as DEBUG_ONLY in "
          f"{time.monotonic() - t0:.2f} s: {json.dumps(result)}")


# ---------------------------------------------------------------- summary table

def cmd_summary(path):
    meta, wrk, curls = load_records(path)

    lines = []
    add = lines.append
    width = 104
    add("symhub vs elfutils' debuginfod (same files, same machine, same client settings)")
    add("=" * width)
    for k in ("date", "host", "cpus", "loadavg", "symhub", "elfutils", "wrk", "netns", "small", "big", "missing"):
        if k in meta:
            add(f"{k:<10} {meta[k]}")
    add("")

    rows = []  # (label, elfutils value, symhub value, fmt, higher_is_better, notes)

    def wrk_row(case, label, field, fmt):
        e, s = wrk.get(f"elfutils-{case}"), wrk.get(f"symhub-{case}")
        if not e or not s:
            rows.append((label, None, None, fmt, True, "(missing)"))
            return
        notes = []
        for who, rec in (("elfutils", e), ("symhub", s)):
            err = rec["errors"]
            bad = err["connect"] + err["read"] + err["write"] + err["timeout"]
            # The negative case is meant to answer 404: wrk counts those as non-2xx.
            if case != "negative":
                bad += err["status"]
            if bad:
                notes.append(f"{who}: {bad} errors {err}")
        rows.append((label, e[field], s[field], fmt, True, "; ".join(notes)))
        return e, s

    def cpu_row(case, label, scale, fmt):
        e, s = wrk.get(f"elfutils-{case}"), wrk.get(f"symhub-{case}")
        if e and s:
            rows.append((label, cpu_us_per_req(e) * scale, cpu_us_per_req(s) * scale, fmt, False, ""))

    wrk_row("small", f"small debuginfo ({meta.get('small_bytes', '?')} B), req/s", "rps", "%.0f")
    cpu_row("small", "  server CPU per request, µs", 1, "%.1f")
    wrk_row("negative", "unknown build id (404), lookups/s", "rps", "%.0f")
    cpu_row("negative", "  server CPU per lookup, µs", 1, "%.1f")
    wrk_row("big", "100 MiB debuginfo, MiB/s", "mib_s", "%.1f")
    cpu_row("big", "  server CPU per 100 MiB response, ms", 1e-3, "%.1f")

    d, m = curls.get("direct", []), curls.get("federated", [])
    if d and m:
        for field, label in (("ttfb_s", "time to first byte"), ("total_s", "total time")):
            dv = statistics.median(r[field] for r in d) * 1000
            mv = statistics.median(r[field] for r in m) * 1000
            rows.append((f"cold 100 MiB, {label}, ms (median of {len(d)})", dv, mv, "%.1f", False, ""))

    add(f"{'measure':<46}{'elfutils':>12}{'symhub':>12}{'ratio':>8}  {'better':<8}{'verdict':<9}notes")
    add("-" * width)
    ahead = behind = 0
    for label, e, s, fmt, higher, notes in rows:
        if e is None or s is None:
            add(f"{label:<46}{'':>12}{'':>12}{'':>8}  {'':<8}{'':<9}{notes}")
            continue
        r = s / e if e else float("nan")
        good = r > 1 if higher else r < 1
        ahead, behind = ahead + good, behind + (not good)
        add(f"{label:<46}{fmt % e:>12}{fmt % s:>12}{r:>7.2f}x  {'higher' if higher else 'lower':<8}"
            f"{'ahead' if good else 'BEHIND':<9}{notes}")
    add("-" * width)
    add(f"ratio = symhub / elfutils on every line; 'better' says which way is better. "
        f"symhub ahead on {ahead} of {ahead + behind} lines.")
    add("Cold rows: elfutils = curl straight from elfutils' server; symhub = curl from a symhub with a")
    add("fresh data dir whose only upstream is that elfutils server (a federated first-ever miss).")
    add("")

    add("Detail per wrk run")
    add(f"{'run':<19}{'wrk args':<10}{'requests':>9}{'p50 ms':>8}{'p99 ms':>8}{'srv cpu':>8}"
        f"{'µs/req':>10}{'wrk cpu':>8}{'irq':>6}{'other':>6}{'host':>6}{'RSS MiB':>9}")
    add("-" * width)
    for case in ("small", "negative", "big"):
        for who in ("elfutils", "symhub"):
            rec = wrk.get(f"{who}-{case}")
            if not rec:
                continue
            add(f"{who + '-' + case:<19}{meta.get('wrk_args_' + case, ''):<10}{rec['requests']:>9}"
                f"{rec['latency_p50_ms']:>8.2f}{rec['latency_p99_ms']:>8.2f}{rec['server_cores']:>8.2f}"
                f"{cpu_us_per_req(rec):>10.1f}{rec['wrk_cores']:>8.2f}{rec['irq_cores']:>6.2f}"
                f"{other(rec):>6.2f}{rec['host_cores']:>6.2f}{rec['rss_max_mib']:>9.1f}")
    add(f"CPU columns: cores busy on average (1.00 = one core; this host has {meta.get('cpus', '?')}, shared by")
    add("wrk and the server). µs/req = server CPU time per request. irq = irq+softirq of the whole host;")
    add("other = host - srv - wrk - irq, i.e. other processes. RSS = max VmRSS sampled every 100 ms.")
    noisy = [n for n, r in wrk.items() if other(r) > 0.25]
    if noisy:
        add(f"WARNING: other load above 0.25 cores during {', '.join(sorted(noisy))}: those numbers "
            "are disturbed; rerun on an idle machine.")
    else:
        add("other load stayed below 0.25 cores in every wrk run.")
    if wrk:
        loads = [other(r) for r in wrk.values()]
        add(f"other load (other processes on the machine) during the wrk runs: "
            f"{min(loads):.2f}-{max(loads):.2f} cores of {meta.get('cpus', '?')}.")
    add("")

    if d and m:
        add("Cold 100 MiB, every run (TTFB / total ms): elfutils " +
            ", ".join(f"{r['ttfb_s']*1000:.1f}/{r['total_s']*1000:.1f}" for r in d) +
            " | symhub " + ", ".join(f"{r['ttfb_s']*1000:.1f}/{r['total_s']*1000:.1f}" for r in m))
        add("")

    cmds = [(k[4:], v) for k, v in meta.items() if k.startswith("cmd_")]
    if cmds:
        add("Commands")
        add("-" * width)
        for k, v in cmds:
            add(f"{k:<17} {v}")

    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "wait-scanned":
        cmd_wait_scanned(argv[2], int(argv[3]))
    elif cmd == "upload":
        cmd_upload(*argv[2:7])
    elif cmd == "summary":
        cmd_summary(argv[2])
    else:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
