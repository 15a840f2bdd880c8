-- wrk script: GET /v1/status, each request with the next of KEYS API keys (KEY_PREFIX-1 ..
-- KEY_PREFIX-KEYS, in turn); prints one RESULT line (requests/s, latency percentiles in
-- microseconds, non-2xx answers, socket errors).
local keys = tonumber(os.getenv("KEYS") or "10000")
local prefix = os.getenv("KEY_PREFIX") or "bench"
local n = 0

function init(args)
  n = math.random(keys)
end

function request()
  n = n % keys + 1
  return wrk.format("GET", "/v1/status", { ["Authorization"] = "Bearer " .. prefix .. "-" .. n })
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
