-- Add an API token to its owner's index unless the owner is at the limit.
--
-- KEYS[1] owner index (zset)   ARGV[1] token id   ARGV[2] created (unix s)   ARGV[3] max
--
-- Returns 1 if added, 0 if the owner already has max tokens.
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
