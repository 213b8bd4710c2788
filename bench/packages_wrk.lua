-- wrk script of bench/packages: every request asks for a random existing key, uniformly
-- over the N keys of the package (N = first argument after `--`). The key formula is the
-- one of key() in bench/packages_helper.py. At the end, one line of exact counters (µs).
local N = 0

local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  N = tonumber(args[1]) or error("packages_wrk.lua: pass the key count after --")
  math.randomseed(os.time() * 1000 + (seed or 0) * 7919)
  for _ = 1, 10 do math.random() end
end

local function key(i)
  return string.format("/f%d.pdb/%08x%08x%08x%08x1/f%d.pdb", i, i,
    (i * 2654435761) % 4294967296, (i * 40503) % 4294967296, 0x5eed, i)
end

request = function()
  return wrk.format("GET", key(math.random(0, N - 1)))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PACKAGES_WRK {"requests": %d, "bytes": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "errors": {"connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
