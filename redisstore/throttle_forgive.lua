-- Take back one counted attempt; the counter never goes below zero.
--
-- KEYS[1] counter
--
-- Returns the count left.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local n = redis.call('DECR', KEYS[1])
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return n
