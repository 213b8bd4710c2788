#!/usr/bin/env python3
"""Helper of bench/soak (standard library only).

  soak_helper.py port                          -> print a free 127.0.0.1 TCP port
  soak_helper.py sample PID OUT                -> every second append "t rss_kib fds" to OUT
  soak_helper.py summary WRK_OUT SAMPLES META  -> print the summary table (META: k=v lines)
"""
import json
import os
import socket
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def sample(pid, out):
    t0 = time.monotonic()
    with open(out, "a", buffering=1) as f:
        while True:
            try:
                r = rss_kib(pid)
                fds = os.listdir(f"/proc/{pid}/fd")
                socks = 0
                for d in fds:
                    try:
                        socks += os.readlink(f"/proc/{pid}/fd/{d}").startswith("socket:")
                    except OSError:
                        pass
            except (FileNotFoundError, ProcessLookupError):
                return
            f.write(f"{time.monotonic() - t0:.1f} {r} {len(fds)} {socks}\n")
            time.sleep(1.0 - (time.monotonic() - t0) % 1.0)


CONNS_SLACK = 600  # idle upstream connections kept by the pool after the load


def mib(k):
    return f"{k / 1024:.1f} MiB"


def summary(wrk_out, samples, meta_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    w = None
    with open(wrk_out) as f:
        for line in f:
            if line.startswith("SOAK_WRK "):
                w = json.loads(line[len("SOAK_WRK "):])
    if w is None:
        print("soak: no SOAK_WRK line in wrk output", file=sys.stderr)
        sys.exit(1)
    rows = []
    with open(samples) as f:
        for line in f:
            p = line.split()
            if len(p) == 4:
                rows.append((float(p[0]), int(p[1]), int(p[2]), int(p[3])))
    # "end" = the last sample, POST_WAIT s after wrk stopped
    # "start" = the samples taken before wrk started (after pre-warm), "end" = after wrk stopped
    n_pre = int(meta.get("pre_samples", "0"))
    pre = rows[:n_pre] or rows[:1]
    run = rows
    start_rss, start_fd = pre[-1][1], pre[-1][2]
    end_rss, end_fd = run[-1][1], run[-1][2]
    max_rss = max(r[1] for r in run)
    max_fd = max(r[2] for r in run)
    # RSS trend over the second half of the load (kiB/min), to tell flat from growing
    n_load = int(meta.get("load_samples", str(len(rows))))
    post1 = rows[min(n_load, len(rows) - 1)]
    load = rows[n_pre:n_load]
    half = load[len(load) // 2:]
    slope = 0.0
    if len(half) >= 4:
        xs = [r[0] for r in half]; ys = [r[1] for r in half]
        mx = sum(xs) / len(xs); my = sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 60 if den else 0.0
    e = w["errors"]; s = w["status"]
    sock_err = e["connect"] + e["read"] + e["write"] + e["timeout"]
    bad_status = s["3xx"] + s["4xx_other"] + s["5xx"] + s["other"]
    dur = w["duration_us"] / 1e6
    snt = w["sent"]
    exp404 = snt["neg"] + snt["miss"] / 2
    out = []
    out.append(f"symhub soak: {meta.get('duration')} at {meta.get('conns')} connections "
               f"({meta.get('date')}, {meta.get('commit')})")
    out.append(f"mix: hit {snt['hit']}, miss {snt['miss']}, neg {snt['neg']}, upload {snt['upload']} "
               f"(warm files {meta.get('warm')}, negative keys {meta.get('neg')})")
    out.append("")
    out.append(f"| {'metric':<28} | {'value':>22} |")
    out.append(f"|{'-' * 30}|{'-' * 24}|")

    def row(k, v):
        out.append(f"| {k:<28} | {v:>22} |")

    row("total requests", f"{w['requests']}")
    row("requests/s", f"{w['requests'] / dur:.0f}")
    row("latency p50", f"{w['p50_us'] / 1000:.2f} ms")
    row("latency p90", f"{w['p90_us'] / 1000:.2f} ms")
    row("latency p99", f"{w['p99_us'] / 1000:.2f} ms")
    row("latency max", f"{w['max_us'] / 1000:.2f} ms")
    row("status 2xx", f"{s['2xx']}")
    row("status 404 (expected)", f"{s['404']} (~{exp404:.0f} exp.)")
    row("status 3xx/4xx/5xx/other", f"{s['3xx']}/{s['4xx_other']}/{s['5xx']}/{s['other']}")
    row("X-Cache HIT/MISS/NEGATIVE", f"{w['x_cache']['HIT']}/{w['x_cache']['MISS']}/{w['x_cache']['NEGATIVE']}")
    row("socket errors c/r/w/timeout", f"{e['connect']}/{e['read']}/{e['write']}/{e['timeout']}")
    row("ERRORS (socket + bad status)", f"{sock_err + bad_status}")
    row("RSS start / end", f"{mib(start_rss)} / {mib(end_rss)}")
    row("RSS max", mib(max_rss))
    row("RSS slope, 2nd half of load", f"{slope / 1024:+.2f} MiB/min")
    row("open fds start / end / max", f"{start_fd} / {end_fd} / {max_fd}")
    row("of which sockets s/e/max", f"{pre[-1][3]} / {run[-1][3]} / {max(r[3] for r in run)}")
    row("fds after load: +1s / end", f"{post1[2]} / {end_fd} (+{meta.get('post_wait')}s)")
    row("data dir size at end", meta.get("data_du", "?"))
    out.append("")
    verdict = []
    if sock_err + bad_status:
        verdict.append(f"FAIL: {sock_err + bad_status} errors")
    # bound: [cache] open_files (1000 by default, an LRU of open objects) + idle sockets
    open_files = int(os.environ.get("OPEN_FILES", "1000"))
    end_files = end_fd - run[-1][3]
    if end_files > pre[-1][2] - pre[-1][3] + open_files + 20:
        verdict.append(f"WARN: non-socket fds {end_files} > start + open_files ({open_files})")
    if run[-1][3] > CONNS_SLACK:
        verdict.append(f"WARN: {run[-1][3]} sockets still open {meta.get('post_wait')}s after the load")
    if slope > 1024:  # > 1 MiB/min over the second half
        verdict.append(f"WARN: RSS still growing ({slope / 1024:.1f} MiB/min in the 2nd half)")
    out.append("verdict: " + ("; ".join(verdict) if verdict else "OK (0 errors, fds within bounds, RSS flat)"))
    print("\n".join(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "port":
        print(free_port())
    elif cmd == "sample":
        sample(int(sys.argv[2]), sys.argv[3])
    elif cmd == "summary":
        summary(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
