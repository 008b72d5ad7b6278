-- Register an owner with the M2M sweep: its entry in the schedule of owners
-- with indexed tokens gets the token's expiry, unless it is due earlier
-- already (a script so that it can share a pipeline of scripts with
-- m2m_create.lua, and so that it works on Redis before ZADD's LT).
--
-- KEYS[1] the sweep's schedule (zset: owner digest -> earliest expiry, unix s)
-- ARGV[1] the owner's digest
-- ARGV[2] the token's expiry, unix s ("+inf": never)
--
-- Returns 1 if the owner's score was set, 0 if it was due earlier.
local function num(s) -- Redis spells +inf "inf"; not every Lua reads either
  if s == 'inf' or s == '+inf' then return math.huge end
  return tonumber(s)
end
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and num(cur) <= num(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
