-- wrk script: password login (auth.v1.AuthService/Token) of the bench user
-- over Connect JSON. Each call checks the throttle, verifies the argon2id
-- hash (m=19 MiB, t=2), starts a session and signs a token: bounded by the
-- password hash, by design.
--   wrk -t2 -c16 -d15s -s bench/login.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.method = "POST"
wrk.path = "/auth.v1.AuthService/Token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"passwordCredential":{"username":"bench","password":"bench-password"}}'

function done(summary, latency, requests) report(summary, latency) end
