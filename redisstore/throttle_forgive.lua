-- Take back counted attempts after a successful login.
--
-- KEYS[1] counter (string)    ARGV[1] "all": delete the counter;
--                                     "one": take back one attempt, never
--                                     going below zero (DECR keeps the TTL)
--
-- Returns the count left (0 when the counter is gone).
if ARGV[1] == 'all' then
  redis.call('DEL', KEYS[1])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local n = redis.call('DECR', KEYS[1])
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return n
