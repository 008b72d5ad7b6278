-- wrk script: M2M CreateToken over Connect JSON with a client secret (client
-- bench-m2m of bench/tokend.bench.yaml; its secret is verified once, then
-- served from the verified-secret cache). Every request issues and stores a
-- new token.
--   wrk -t2 -c64 -d20s -s bench/m2m_create.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "POST"
wrk.path = "/m2moauthserver.pb.M2MOAuthService/CreateToken"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grantType":"client_credentials","clientId":"bench-m2m","clientSecret":"bench-m2m-secret","audience":["api"]}'

function done(summary, latency, requests) report(summary, latency) end
