-- Reschedule the owners of one sweep round (their expired entries removed):
-- unless a token created meanwhile changed an owner's score, set it to the
-- earliest expiry left in the owner's index, or remove the owner when its
-- index is empty. One run for up to 100 owners: the schedule is one key.
--
-- KEYS[1] the sweep's schedule (zset: owner digest -> earliest expiry, unix s)
-- ARGV    triples: the owner's digest, the score the sweep read before its
--         step, the earliest expiry left in the index ("" when empty)
--
-- Returns the digests of the owners removed.
local function num(s) -- Redis spells +inf "inf"; not every Lua reads either
  if s == 'inf' or s == '+inf' then return math.huge end
  return tonumber(s)
end
local removed = {}
for i = 1, #ARGV, 3 do
  local d, seen, next = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('ZSCORE', KEYS[1], d)
  if cur and num(cur) == num(seen) then
    if next == '' then
      redis.call('ZREM', KEYS[1], d)
      removed[#removed + 1] = d
    else
      redis.call('ZADD', KEYS[1], next, d)
    end
  end
end
return removed
