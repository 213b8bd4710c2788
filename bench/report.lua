-- wrk hook: at the end of a run, print exact counters as one JSON line that
-- bench/helper.py parses (wrk's normal output rounds, e.g. "1.23GB").
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_REPORT {"requests": %d, "bytes": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
