-- Revoke a refresh-token family, if it exists.
--
-- KEYS[1] family hash
--
-- Returns 1 if the family exists (now revoked), 0 if it does not.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'revoked', '1')
return 1
