-- wrk script: ExchangeToken over Connect JSON, every request with a fresh
-- authorization code (made beforehand by `bench/seed -mode codes`; a code
-- works once, so a run needs more codes than requests).
--   CODES=codes.txt wrk -t2 -c32 -d20s -s bench/exchange.lua http://127.0.0.1:18080 -- 2
-- The argument after -- is the thread count (to split the codes file).
-- A thread that runs out of codes stops; "left" in the last line says how
-- many codes were unused, so 0 means the run was cut short.
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
  codes = {}
  local i = 0
  for line in io.lines(os.getenv("CODES") or "codes.txt") do
    if i % nthreads == id then table.insert(codes, line) end
    i = i + 1
  end
  failures = 0
end

function request()
  local c = table.remove(codes) or "none"
  return wrk.format("POST", "/auth.AuthService/ExchangeToken",
    {["Content-Type"] = "application/json"},
    '{"code":"' .. c .. '","clientId":1001,"clientSecret":"bench-client-secret",' ..
    '"redirectUri":"http://127.0.0.1:9999/callback"}')
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"accessToken"', 1, true) then failures = failures + 1 end
  if #codes == 0 then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local left = 0
  for _, t in ipairs(threads) do left = left + #t:get("codes") end
  report(summary, latency, failures_of(threads))
  io.write(string.format("codes left %d\n", left))
end
