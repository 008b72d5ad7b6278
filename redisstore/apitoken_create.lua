-- Store an API token's record, with its expiry.
--
-- KEYS[1] token record (hash)   ARGV[1] owner        ARGV[4] created (unix s)
--                               ARGV[2] name         ARGV[5] expires (unix s, "0" = never)
--                               ARGV[3] secret hash (hex SHA-256)
--
-- Returns 1 when stored, 0 when the id is already taken (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'name', ARGV[2], 'secret_hash', ARGV[3],
  'created', ARGV[4], 'expires', ARGV[5], 'last_used', '0')
if ARGV[5] ~= '0' then
  redis.call('EXPIREAT', KEYS[1], ARGV[5])
end
return 1
