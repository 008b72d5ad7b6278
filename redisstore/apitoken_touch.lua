-- Record an API token's last use, if the token still exists.
--
-- KEYS[1] token record (hash)   ARGV[1] used at (unix s)
--
-- Returns 1 if recorded, 0 if the token is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
return 1
