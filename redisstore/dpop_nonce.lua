-- Return the fleet's DPoP nonces, rotating first when the current one is old.
--
-- KEYS[1] nonce record (hash)     ARGV[1] rotation period (ms)
--                                 ARGV[2] a fresh nonce, used if this call rotates
--
-- The clock is Redis' own (TIME), so one replica rotates per period and all
-- agree. Returns {current, previous} (previous "" before the first rotation).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local every = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'at')
if h[1] and now - tonumber(h[3]) < every then
  return {h[1], h[2] or ''}
end
local prev = h[1] or ''
redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', prev, 'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 3 * every)
return {ARGV[2], prev}
