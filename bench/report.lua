-- Shared by the wrk scripts of this directory (loaded with dofile): the last
-- line of a run, for people and for bench/run.
--   requests/s 10021  p50 5.10 ms  p99 16.20 ms  requests 150321  failed 0
-- failed counts socket errors plus, for a script that checks every answer
-- itself (and passes its count), the answers it found wrong (any status but
-- 200, an error inside a 200, a missing token); otherwise non-2xx answers.
function report(summary, latency, checked)
  local e = summary.errors
  local failed = (checked or e.status) + e.connect + e.read + e.write + e.timeout
  io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  requests %d  failed %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, failed))
end

-- failures_of sums the "failures" global of every thread setup() saw.
function failures_of(threads)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get("failures") or 0) end
  return n
end
