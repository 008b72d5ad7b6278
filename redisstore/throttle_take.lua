-- Count one login attempt in a fixed window that starts at the first one.
--
-- KEYS[1] counter (string)    ARGV[1] window (ms)
--
-- Returns the count including this attempt. The window is set when the
-- counter is created (and repaired if a counter ever lacks a TTL).
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
