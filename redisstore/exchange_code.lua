-- Exchange an authorization code exactly once, atomically: consume the code
-- and start the refresh-token family it names, with its first token.
--
-- KEYS[1] code (hash, by the code's SHA-256)   ARGV[1] client id the exchange authenticated as
-- KEYS[2] family (hash)                        ARGV[2] redirect URI of the exchange
-- KEYS[3] first refresh token (hash, by the    ARGV[3] S256 of the exchange's PKCE verifier
--         token's SHA-256)                             ("" when none was sent)
--                                              ARGV[4] refresh token lifetime (ms), for
--                                                      KEYS[2] and KEYS[3]
--                                              ARGV[5] DPoP key thumbprint the family is
--                                                      bound to ("" when none)
--
-- The three keys share the family's hash tag (the code is "<fam>.<secret>"),
-- so one script on one slot does what an exchange writes: there is no moment
-- in which the code is used and its family does not exist yet, and a replay
-- always finds the family it must revoke.
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
--    1  exchanged: {1, user, scope, issued, method}
--   -1  unknown or expired code, or another client's (only {code})
--   -2  redirect URI differs
--   -3  PKCE verifier missing, wrong, or sent for a code without challenge
--   -4  already used: the family it started is revoked (RFC 6749 §4.1.2)
--   -5  the family key exists already (the code was made with a colliding
--       family id): nothing is written
local c = redis.call('HMGET', KEYS[1], 'user', 'client', 'redirect', 'scope',
  'challenge', 'issued', 'used', 'method')
if not c[1] or c[2] ~= ARGV[1] then
  return {-1}
end
if c[3] ~= ARGV[2] then
  return {-2}
end
if c[5] ~= ARGV[3] then
  return {-3}
end
if c[7] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], 'revoked', '1')
  end
  return {-4}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {-5}
end
redis.call('HSET', KEYS[1], 'used', '1')
start_family(KEYS[2], KEYS[3], c[1], c[2], c[4], c[6], ARGV[4], ARGV[5]) -- family.lua
return {1, c[1], c[4], c[6], c[8]}
