-- wrk script: POST one Iris sample at a fixed rate, WRK_RATE requests a second,
-- whatever the answers; then print one summary line as JSON (as post.lua).
--   WRK_RATE=2000 wrk -t1 -c512 -d10s -s benchmarks/paced.lua http://127.0.0.1:8000/predict
-- Each connection, once free, takes the next free start time of a schedule
-- that advances by 1/WRK_RATE s, and waits for it: an open loop, as long as a
-- connection is free when a start time comes (so give it many more connections
-- than requests in flight). A request the schedule is late for starts at once.
-- Run it with one thread (-t1): the schedule is the thread's.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
int clock_gettime(int clock, paced_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("paced_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local interval_ms = 1000 / tonumber(os.getenv("WRK_RATE"))
local next_start = nil

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'

function delay()
  local now = now_ms()
  next_start = math.max(next_start or now, now - 1000) + interval_ms
  return math.max(0, next_start - now)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
