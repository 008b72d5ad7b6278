-- Consume an authorization code exactly once, atomically.
--
-- KEYS[1] code (hash, by the code's SHA-256)
-- ARGV[1] client id the exchange authenticated as
-- ARGV[2] redirect URI of the exchange
-- ARGV[3] S256 of the exchange's PKCE verifier ("" when none was sent)
--
-- The checks run before the code is touched, so an exchange by another
-- client, with another redirect URI or with a wrong verifier burns nothing:
-- the legitimate client can still redeem the code. The values compared are
-- not secrets (the challenge travelled through the browser; a verifier is
-- compared by its hash), so Lua's plain comparison leaks nothing useful.
-- A used code keeps its record, with used = "1", until its original TTL
-- ends (HSET keeps the TTL), so that a replay is recognised.
--
-- Returns {code, ...}, code being:
--    1  consumed: {1, user, scope, family, issued, method}
--   -1  unknown or expired code, or another client's (only {code})
--   -2  redirect URI differs
--   -3  PKCE verifier missing, wrong, or sent for a code without challenge
--   -4  already used: {-4, family}; the record is marked replayed, so the
--       first exchange, if still running, revokes its own family too
local c = redis.call('HMGET', KEYS[1], 'user', 'client', 'redirect', 'scope',
  'challenge', 'family', 'issued', 'used', 'method')
if not c[1] or c[2] ~= ARGV[1] then
  return {-1}
end
if c[3] ~= ARGV[2] then
  return {-2}
end
if c[5] ~= ARGV[3] then
  return {-3}
end
if c[8] == '1' then
  redis.call('HSET', KEYS[1], 'replayed', '1')
  return {-4, c[6]}
end
redis.call('HSET', KEYS[1], 'used', '1')
return {1, c[1], c[4], c[6], c[7], c[9]}
