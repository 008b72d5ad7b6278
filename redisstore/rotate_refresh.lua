-- Rotate a refresh token: consume it and issue its successor, atomically.
--
-- KEYS[1] family hash        ARGV[1] now (unix ms)
-- KEYS[2] presented token     ARGV[2] reuse grace (ms)
-- KEYS[3] successor token     ARGV[3] successor lifetime (ms)
--
-- Returns {code, user, client, scope, auth_time}:
--   1 rotated; -1 unknown token or family; -2 family revoked;
--   -3 token reused after the grace window (the family is now revoked).
local fam = redis.call('HMGET', KEYS[1], 'revoked', 'user', 'client', 'scope', 'auth_time')
if not fam[2] then
  return {-1}
end
local st = redis.call('HMGET', KEYS[2], 'state', 'used_at')
if not st[1] then
  return {-1}
end
if fam[1] == '1' then
  return {-2, fam[2], fam[3], fam[4], fam[5]}
end
local now = tonumber(ARGV[1])
if st[1] == 'used' then
  if now - tonumber(st[2]) >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'revoked', '1')
    return {-3, fam[2], fam[3], fam[4], fam[5]}
  end
  -- Inside the grace window: a parallel refresh gets a successor too.
else
  redis.call('HSET', KEYS[2], 'state', 'used', 'used_at', ARGV[1])
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[3], 'state', 'active')
redis.call('PEXPIRE', KEYS[3], ttl)
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, fam[2], fam[3], fam[4], fam[5]}
