-- Store a new authorization code, atomically.
--
-- KEYS[1] code (hash, by the code's SHA-256; its hash tag is the id of the
--         refresh-token family the exchange will start)
-- ARGV[1] user id            ARGV[5] PKCE challenge ("" when none)
-- ARGV[2] client id          ARGV[6] PKCE method ("" when none)
-- ARGV[3] redirect URI       ARGV[7] lifetime (ms)
-- ARGV[4] scope
--
-- Returns 1 when stored, 0 when a code with that hash exists (a collision of
-- 256 random bits: nothing is written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'client', ARGV[2], 'redirect', ARGV[3],
  'scope', ARGV[4], 'challenge', ARGV[5], 'method', ARGV[6],
  'issued', now[1], 'used', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
