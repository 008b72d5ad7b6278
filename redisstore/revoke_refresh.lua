-- Revoke the family of a refresh token, only if that token exists (active
-- or already rotated). The family id is visible in access tokens (sid), so
-- knowing it must not be enough to log a session out: the caller has to
-- present one of the family's real tokens.
--
-- KEYS[1] family (hash)
-- KEYS[2] the token's key (hash; same {family} hash tag)
--
-- Returns 1 if the family was revoked, 0 if the token or family does not
-- exist (nothing is written).
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
