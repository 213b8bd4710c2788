#!/usr/bin/env python3
"""Slow upstream of bench/soak (standard library only).

GET /<file>/<id>/<name>, after a random 50-200 ms wait:
  - file starting with `warm<i>`: 200, a deterministic body of 10..100 KiB (pre-warm set);
  - file starting with `miss` : the number after the last `-` in the id-less file name
    decides: even -> 200 with ~10 KiB, odd -> 404;
  - anything else (e.g. `neg...`): 404.
Usage: soak_upstream.py PORT
"""
import random
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NUM = re.compile(r"(\d+)")


def warm_size(i):
    return 10 * 1024 + (i * 7919) % (90 * 1024 + 1)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        time.sleep(random.uniform(0.05, 0.2))
        parts = self.path.split("?")[0].strip("/").split("/")
        f = parts[0] if parts else ""
        if f.startswith("warm"):
            m = NUM.search(f)
            i = int(m.group(1)) if m else 0
            line = ("FUNC %x 10 0 warm_function_%d\n" % (i, i)).encode()
            n = warm_size(i)
            body = (b"MODULE Linux x86_64 0 " + f.encode() + b"\n" + line * (n // len(line) + 1))[:n]
            return self._send(200, body)
        if f.startswith("miss"):
            nums = NUM.findall(f)
            n = int(nums[-1]) if nums else 1
            if n % 2 == 0:
                return self._send(200, b"PUBLIC 1000 0 miss_function\n" * 360)  # ~10 KiB
            return self._send(404, b"not found\n")
        return self._send(404, b"not found\n")

    do_HEAD = do_GET


class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


if __name__ == "__main__":
    srv = S(("127.0.0.1", int(sys.argv[1])), H)
    print("soak_upstream: listening", flush=True)
    srv.serve_forever()
