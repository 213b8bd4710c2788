-- wrk script of bench/soak: a mixed load. Arguments after `--`: KEY WARM_COUNT NEG_COUNT RUN_TAG
--   ~70% GET of one of WARM_COUNT pre-warmed files (expect 200, X-Cache HIT)
--   ~15% GET of a fresh key (unique per request) against the slow upstream: even -> 200, odd -> 404
--   ~10% GET of one of NEG_COUNT known-missing keys (expect 404, X-Cache NEGATIVE)
--   ~5%  POST /symupload (sym-upload-v1) of a small .sym with a fresh 33-hex ID (expect 200)
-- Each response is counted by request kind and status class; done() prints one JSON line.
local threads = {}
local tid = 0
setup = function(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

local KEY, WARM, NEG, TAG
local n = 0
local BOUNDARY = "soakBoundary7MA4YWxkTrZu0gW"

local function hexid(a, b)
  -- 33 uppercase hex: 8 (thread+tag) + 24 (counter) + "0"
  return string.format("%02X%06X%024X0", a % 256, TAG % 16777216, b)
end

local function warm_path(i)
  local f = string.format("warm%d.so", i)
  return string.format("/%s/%s/%s.sym", f, string.format("%032X0", 0xABC00000 + i), f)
end

local function neg_path(i)
  local f = string.format("neg%d.so", i)
  return string.format("/%s/%s/%s.sym", f, string.format("%032X0", 0xDEF00000 + i), f)
end

init = function(args)
  KEY = args[1]; WARM = tonumber(args[2]); NEG = tonumber(args[3]); TAG = tonumber(args[4]) or 0
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  for _ = 1, 10 do math.random() end
  hits, miss, negs, ups = 0, 0, 0, 0          -- requests sent, by kind (globals: thread:get)
  s2, s3, s404, s4, s5, sother = 0, 0, 0, 0, 0, 0  -- responses by status class
  bad_hit, bad_neg, bad_up = 0, 0, 0          -- responses of the wrong kind (status vs. kind)
  xhit, xmiss, xneg = 0, 0, 0                 -- X-Cache header values seen
end

request = function()
  n = n + 1
  local r = math.random(100)
  if r <= 70 then
    hits = hits + 1
    return wrk.format("GET", warm_path(math.random(0, WARM - 1)), {["X-Soak"] = "hit"})
  elseif r <= 85 then
    miss = miss + 1
    -- unique: thread id, run tag, counter; parity of the trailing number decides 200/404
    local f = string.format("miss-%d-%d-%d.so", tid, TAG, n)
    local id = hexid(tid, n)
    return wrk.format("GET", string.format("/%s/%s/%s.sym", f, id, f), {["X-Soak"] = "miss"})
  elseif r <= 95 then
    negs = negs + 1
    return wrk.format("GET", neg_path(math.random(0, NEG - 1)), {["X-Soak"] = "neg"})
  else
    ups = ups + 1
    local id = hexid(tid + 128, n)
    local f = string.format("up-%d-%d-%d.so", tid, TAG, n)
    local sym = string.format("MODULE Linux x86_64 %s %s\nFILE 0 soak.c\nFUNC 1000 10 0 soak_%d\n1000 10 1 0\nPUBLIC 2000 0 soak_pub_%d\n", id, f, n, n)
    local body = "--" .. BOUNDARY .. "\r\n" ..
      'Content-Disposition: form-data; name="debug_file"\r\n\r\n' .. f .. "\r\n" ..
      "--" .. BOUNDARY .. "\r\n" ..
      'Content-Disposition: form-data; name="debug_identifier"\r\n\r\n' .. id .. "\r\n" ..
      "--" .. BOUNDARY .. "\r\n" ..
      'Content-Disposition: form-data; name="symbol_file"; filename="' .. f .. '.sym"\r\n' ..
      "Content-Type: application/octet-stream\r\n\r\n" .. sym .. "\r\n" ..
      "--" .. BOUNDARY .. "--\r\n"
    return wrk.format("POST", "/symupload?key=" .. KEY,
      {["Content-Type"] = "multipart/form-data; boundary=" .. BOUNDARY, ["X-Soak"] = "up"}, body)
  end
end

response = function(status, headers, body)
  if status >= 200 and status < 300 then s2 = s2 + 1
  elseif status == 404 then s404 = s404 + 1
  elseif status >= 300 and status < 400 then s3 = s3 + 1
  elseif status >= 400 and status < 500 then s4 = s4 + 1
  elseif status >= 500 and status < 600 then s5 = s5 + 1
  else sother = sother + 1 end
  local x = headers["X-Cache"] or headers["x-cache"]
  if x == "HIT" then xhit = xhit + 1
  elseif x == "MISS" then xmiss = xmiss + 1
  elseif x == "NEGATIVE" then xneg = xneg + 1 end
end

done = function(summary, latency, requests)
  local t = {hits = 0, miss = 0, negs = 0, ups = 0, s2 = 0, s3 = 0, s404 = 0, s4 = 0, s5 = 0,
             sother = 0, xhit = 0, xmiss = 0, xneg = 0}
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (tonumber(th:get(k)) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK_WRK {"requests": %d, "bytes": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "errors": {"connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"sent": {"hit": %d, "miss": %d, "neg": %d, "upload": %d}, ' ..
    '"status": {"2xx": %d, "3xx": %d, "404": %d, "4xx_other": %d, "5xx": %d, "other": %d}, ' ..
    '"x_cache": {"HIT": %d, "MISS": %d, "NEGATIVE": %d}}\n',
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout,
    t.hits, t.miss, t.negs, t.ups, t.s2, t.s3, t.s404, t.s4, t.s5, t.sother,
    t.xhit, t.xmiss, t.xneg))
end
