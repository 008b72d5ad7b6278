-- wrk script: a Connect JSON call that does no Redis I/O and no signing, for
-- reference beside the floors: M2M CreateToken with a grant type other than
-- client_credentials, refused as invalid_argument after the (cached) client
-- secret check. What it costs over GET /healthz is Connect's and tokend's
-- interceptors' own cost per call.
--   wrk -t2 -c64 -d15s -s bench/refused.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local threads = {}

function setup(thread) table.insert(threads, thread) end

wrk.method = "POST"
wrk.path = "/m2moauthserver.pb.M2MOAuthService/CreateToken"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grantType":"password","clientId":"bench-m2m","clientSecret":"bench-m2m-secret","audience":["api"]}'

failures = 0
function response(status, headers, body)
  if status ~= 400 or not body:find('"invalid_argument"', 1, true) then failures = failures + 1 end
end

function done(summary, latency, requests) report(summary, latency, failures_of(threads)) end
