-- wrk script: POST Iris samples as JSON, then print one summary line as JSON.
--   wrk -t1 -c64 -d10s -s benchmarks/post.lua http://127.0.0.1:8000/predict
--   WRK_BATCH=100 wrk -t1 -c64 -d10s -s benchmarks/post.lua http://127.0.0.1:8000/predict/batch
-- Without WRK_BATCH the body is one sample; with it, {"instances": [...]} of that many.

local sample = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
local batch = tonumber(os.getenv("WRK_BATCH") or "")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if batch then
  local instances = {}
  for i = 1, batch do
    instances[i] = sample
  end
  wrk.body = '{"instances": [' .. table.concat(instances, ", ") .. ']}'
else
  wrk.body = sample
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
