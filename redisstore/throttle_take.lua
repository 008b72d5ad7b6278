-- Count one attempt.
--
-- KEYS[1] counter      ARGV[1] window (ms), set on the first attempt
--
-- Returns the count including this attempt.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
