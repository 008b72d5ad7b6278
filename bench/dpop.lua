-- wrk script: DPoP calls, each with a proof of its own (a proof is good once).
-- PROOFS names a file made by `bench/seed -mode dpop-m2m` (one proof a line:
-- M2M CreateToken bound to the proofs' key) or `-mode dpop-bearer` (line 1 a
-- bound token, line 2 ids, then proofs: GetTokens with the token's key).
-- MODE=bearer for the second kind. Thread i of T sends lines i, i+T, ...; a thread that runs out starts over,
-- and the replays it then sends are refused and counted as failures: make
-- more proofs than the run sends. The proofs are good for dpop.iat_window.
--   PROOFS=proofs.txt wrk -t2 -c64 -d10s -s bench/dpop.lua http://127.0.0.1:18080
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local threads = {}
local count = 0

-- wrk runs a thread's init right after its setup, before the next thread's
-- setup: the number of threads comes from THREADS (default 2, as -t2).
function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end

local proofs, idx, bearer, want = {}, 1, nil, 0

function init(args)
  local f = assert(io.open(os.getenv("PROOFS") or "proofs.txt"))
  local first = f:read("*l")
  local nthreads = tonumber(os.getenv("THREADS") or "2")
  local n = 0
  if os.getenv("MODE") == "bearer" then
    bearer = first
    local ids = f:read("*l")
    want = select(2, ids:gsub(",", ",")) + 1
    local msg = '{"idFilter":["' .. ids:gsub(",", '","') .. '"]}'
    local m = #msg
    wrk.method = "POST"
    wrk.path = "/m2moauthserver.pb.M2MOAuthService/GetTokens"
    wrk.headers["Content-Type"] = "application/connect+json"
    wrk.headers["Authorization"] = "DPoP " .. bearer
    wrk.body = string.char(0, math.floor(m / 16777216) % 256, math.floor(m / 65536) % 256,
      math.floor(m / 256) % 256, m % 256) .. msg
  else
    n = 1
    if (0 % nthreads) == tid then table.insert(proofs, first) end
    wrk.method = "POST"
    wrk.path = "/m2moauthserver.pb.M2MOAuthService/CreateToken"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"grantType":"client_credentials","clientId":"bench-m2m","clientSecret":"bench-m2m-secret","audience":["api"]}'
  end
  for line in f:lines() do
    if n % nthreads == tid then table.insert(proofs, line) end
    n = n + 1
  end
  f:close()
end

function request()
  local p = proofs[idx]
  idx = idx + 1
  if idx > #proofs then idx = 1 end
  wrk.headers["DPoP"] = p
  return wrk.format()
end

failures = 0
function response(status, headers, body)
  if bearer then
    local _, got = body:gsub('"id":', "")
    if status ~= 200 or got ~= want or body:find('"error"', 1, true) then failures = failures + 1 end
  elseif status ~= 200 then
    failures = failures + 1
  end
end

function done(summary, latency, requests) report(summary, latency, failures_of(threads)) end
