-- wrk script for bench/proxy_bench.py: POST one JSON body, print a JSON summary at the end.
--
-- Inputs come from the environment (not the command line, so the bearer token stays out of `ps`):
--   BENCH_BODY_FILE      path of the JSON request body
--   BENCH_AUTHORIZATION  value of the Authorization header (optional)
-- done() prints one line "WRK_JSON {...}" with latency percentiles in microseconds; wrk counts any
-- HTTP status >= 400 in errors.status.

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f,"mean":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
