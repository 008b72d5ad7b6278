-- Remove the index and blacklist entries of one owner's expired M2M tokens
-- (their records are gone already: they carry the token's expiry as TTL).
-- At most ARGV[1] per run; idempotent, so every replica may run it at once.
--
-- KEYS[1] the owner's index (zset, scored by expiry in unix s)
-- KEYS[2] the owner's blacklist (set)
-- ARGV[1] batch size
--
-- Time is Redis' own (TIME), so every replica agrees.
--
-- Returns {removed, the earliest expiry left in the index (unix s, as a
-- string; "" when the index is empty)}.
local now = redis.call('TIME')[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('SREM', KEYS[2], id)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#ids, first[2] or ''}
