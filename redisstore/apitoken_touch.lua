-- Record an API token's last use, if the token still exists and the time is
-- later than the one recorded (batches may arrive out of order).
--
-- KEYS[1] token record (hash)   ARGV[1] used at (unix s)
--
-- Returns 1 if recorded, 0 if the token is gone or the time not later.
local last = redis.call('HGET', KEYS[1], 'last_used')
if not last or tonumber(last) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
return 1
