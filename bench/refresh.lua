-- wrk script: RefreshToken over Connect JSON, each connection rotating its
-- own chain of refresh tokens (every request presents the token the
-- previous response returned, so every call is a real rotation).
--   TOKENS=tokens.txt wrk -t2 -c32 -d30s -s bench/refresh.lua http://127.0.0.1:8080 -- 2
-- The argument after -- is the thread count (to split the tokens file).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[1] or "1")
  tokens = {}
  local i = 0
  for line in io.lines(os.getenv("TOKENS") or "tokens.txt") do
    if i % nthreads == id then table.insert(tokens, line) end
    i = i + 1
  end
  failures = 0
end

function request()
  local t = table.remove(tokens) or "none"
  return wrk.format("POST", "/auth.v1.AuthService/RefreshToken",
    {["Content-Type"] = "application/json"}, '{"refreshToken":"' .. t .. '"}')
end

function response(status, headers, body)
  local t = body:match('"refreshToken":"([^"]+)"')
  if t then table.insert(tokens, t) else failures = failures + 1 end
end

function done(summary, latency, requests) report(summary, latency, failures_of(threads)) end
