-- Revoke a refresh-token family, if it exists. The family keeps its TTL, so
-- its tokens are refused with "revoked" until they would have expired.
--
-- KEYS[1] family (hash)
--
-- Returns 1 if the family exists (now revoked), 0 if it does not (nothing
-- is written: no key without a TTL).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
