-- Reschedule one owner after a sweep step (m2m_sweep.lua): unless a token
-- created meanwhile changed the owner's score, set it to the earliest expiry
-- left in the owner's index, or remove the owner when the index is empty.
--
-- KEYS[1] the sweep's schedule (zset: owner digest -> earliest expiry, unix s)
-- ARGV[1] the owner's digest
-- ARGV[2] the score the sweep read before its step
-- ARGV[3] the earliest expiry left in the index ("" when empty)
--
-- Returns 1 when the owner was removed, 0 otherwise.
local function num(s) -- Redis spells +inf "inf"; not every Lua reads either
  if s == 'inf' or s == '+inf' then return math.huge end
  return tonumber(s)
end
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur or num(cur) ~= num(ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 0
