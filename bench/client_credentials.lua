-- wrk script: the OAuth 2.0 client_credentials grant (RFC 6749 §4.4) as a
-- form POST with client_secret_post, for any token server: tokend's
-- /oauth/token or a peer's (bench/run points it at Ory Hydra's
-- /oauth2/token). TOKEN_PATH, CLIENT_ID, CLIENT_SECRET, SCOPE from the
-- environment.
--   TOKEN_PATH=/oauth/token CLIENT_ID=bench-m2m CLIENT_SECRET=bench-m2m-secret \
--     wrk -t2 -c64 -d15s -s bench/client_credentials.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local threads = {}

function setup(thread) table.insert(threads, thread) end

wrk.method = "POST"
wrk.path = os.getenv("TOKEN_PATH") or "/oauth/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials&client_id=" .. os.getenv("CLIENT_ID") ..
  "&client_secret=" .. os.getenv("CLIENT_SECRET") ..
  ((os.getenv("SCOPE") or "") ~= "" and ("&scope=" .. os.getenv("SCOPE")) or "")

failures = 0
function response(status, headers, body)
  if status ~= 200 or not body:find('"access_token"', 1, true) then failures = failures + 1 end
end

function done(summary, latency, requests) report(summary, latency, failures_of(threads)) end
