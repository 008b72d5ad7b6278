-- wrk script: GetAccessToken over Connect JSON with one API token secret.
--   SECRET=$(cat secret.txt) wrk -t2 -c32 -d30s -s bench/getaccesstoken.lua http://127.0.0.1:8080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "POST"
wrk.path = "/priv.tokenservice.v1alpha1.TokenService/GetAccessToken"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"' .. os.getenv("SECRET") .. '"}'

function done(summary, latency, requests) report(summary, latency) end
