-- wrk script: GET /healthz, the cheapest exchange tokend serves (no Redis,
-- no signature). bench/run uses its CPU per request as the HTTP part of each
-- call's floor.
--   wrk -t2 -c64 -d10s -s bench/healthz.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.path = "/healthz"

function done(summary, latency, requests) report(summary, latency) end
