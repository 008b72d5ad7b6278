-- wrk script: a bearer-checked call. M2MOAuthService/GetTokens (a server
-- stream, so the Connect streaming protocol: an enveloped JSON request) with
-- an access token and an id_filter, both made by `bench/seed -mode bearer`:
-- line 1 the token, line 2 the ids, comma-separated. Every call verifies the
-- token, checks that it is not revoked, and reads the tokens named.
--   BEARER=bearer.txt wrk -t2 -c64 -d15s -s bench/bearer.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local threads = {}

function setup(thread) table.insert(threads, thread) end

local f = assert(io.open(os.getenv("BEARER") or "bearer.txt"))
local token, ids = f:read("*l"), f:read("*l")
f:close()
local want = select(2, ids:gsub(",", ",")) + 1 -- messages per answer

local msg = '{"idFilter":["' .. ids:gsub(",", '","') .. '"]}'
local n = #msg
wrk.method = "POST"
wrk.path = "/m2moauthserver.pb.M2MOAuthService/GetTokens"
wrk.headers["Content-Type"] = "application/connect+json"
wrk.headers["Authorization"] = "Bearer " .. token
-- Envelope: flags 0, then the message length as 4 bytes, big-endian.
wrk.body = string.char(0, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
  math.floor(n / 256) % 256, n % 256) .. msg

failures = 0
function response(status, headers, body)
  -- Errors of a stream come in its end message with status 200.
  local _, got = body:gsub('"id":', "")
  if status ~= 200 or got ~= want or body:find('"error"', 1, true) then failures = failures + 1 end
end

function done(summary, latency, requests) report(summary, latency, failures_of(threads)) end
