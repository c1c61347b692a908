-- wrk script: POST one Iris sample at a fixed rate, WRK_RATE requests a second,
-- whatever the answers; then print one summary line as JSON (as post.lua).
--   WRK_RATE=2000 wrk -t1 -c512 -d10s -s benchmarks/paced.lua http://127.0.0.1:8000/predict
-- Each connection, once free, takes the next free start time of a schedule
-- that advances by 1/WRK_RATE s, and waits for it: an open loop, as long as a
-- connection is free when a start time comes (so give it many more connections
-- than requests in flight). A request the schedule is late for starts at once.
-- Run it with one thread (-t1): the schedule is the thread's. Without WRK_RATE,
-- each connection sends its next request as soon as it has its answer (a
-- closed loop, as post.lua).
--
-- wrk times every answer alike, 503s included. The summary also has the
-- latency of the answers 200 alone, as the client saw them: each request sends
-- its start time as its X-Request-ID, which the service sends back.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
int clock_gettime(int clock, paced_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("paced_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local rate = tonumber(os.getenv("WRK_RATE") or "")
local interval_us = rate and 1000000 / rate
local next_start = nil
local body = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
local headers = {["Content-Type"] = "application/json"}
ok_us = {}  -- global: done() reads it from each thread

if rate then
  function delay()
    local now = now_us()
    next_start = math.max(next_start or now, now - 1000000) + interval_us
    return math.max(0, next_start - now) / 1000
  end
end

function request()
  headers["X-Request-ID"] = string.format("%d", now_us())
  return wrk.format("POST", nil, headers, body)
end

function response(status, answer_headers, answer_body)
  local sent = tonumber(answer_headers["x-request-id"])
  if status == 200 and sent then
    ok_us[#ok_us + 1] = now_us() - sent
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local ok = {}
  for _, thread in ipairs(threads) do
    for _, us in ipairs(thread:get("ok_us")) do
      ok[#ok + 1] = us
    end
  end
  table.sort(ok)
  local function ok_percentile(share)
    return ok[math.max(1, math.ceil(share * #ok))] or -1
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d, ' ..
    '"ok_count": %d, "ok_p50_us": %d, "ok_p99_us": %d, "ok_max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max,
    #ok, ok_percentile(0.5), ok_percentile(0.99), ok[#ok] or -1))
end
