-- Rotate a refresh token: consume it and store its successor, atomically.
--
-- KEYS[1] family (hash)              ARGV[1] reuse grace (ms)
-- KEYS[2] presented token (hash)     ARGV[2] successor lifetime (ms)
-- KEYS[3] successor token (hash)
--
-- The clock is Redis' own (TIME), so every tokend instance measures the
-- grace window alike.
--
-- Returns {code, user, client, scope, auth_time}, code being:
--    1  rotated: KEYS[3] stored; the family lives at least as long as it
--   -1  unknown or expired token or family (only {code})
--   -2  the family is revoked
--   -3  the token was consumed longer than the grace window ago: reuse;
--       the family is now revoked
local fam = redis.call('HMGET', KEYS[1], 'revoked', 'user', 'client', 'scope', 'auth_time')
if not fam[2] then
  return {-1}
end
local tok = redis.call('HMGET', KEYS[2], 'state', 'used_at')
if not tok[1] then
  return {-1}
end
if fam[1] == '1' then
  return {-2, fam[2], fam[3], fam[4], fam[5]}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tok[1] == 'used' then
  if now - tonumber(tok[2]) >= tonumber(ARGV[1]) then
    redis.call('HSET', KEYS[1], 'revoked', '1')
    return {-3, fam[2], fam[3], fam[4], fam[5]}
  end
  -- Inside the grace window (parallel refreshes from one client): this
  -- caller gets a successor too; used_at keeps the first use, so the
  -- window is not extended.
else
  redis.call('HSET', KEYS[2], 'state', 'used', 'used_at', string.format('%d', now))
end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[3], 'state', 'active')
redis.call('PEXPIRE', KEYS[3], ttl)
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, fam[2], fam[3], fam[4], fam[5]}
