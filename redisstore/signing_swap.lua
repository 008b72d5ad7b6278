-- Replaces the signing-key ring if nobody has replaced it since the caller
-- read it (compare-and-set on its version), so that of several replicas
-- rotating at once exactly one wins.
--
-- KEYS[1]  the ring (HASH: version, doc)
-- ARGV[1]  the version the caller read ("0": no ring yet)
-- ARGV[2]  the new document (JSON, private keys sealed by the caller)
--
-- Returns the new version, or 0 when the ring has moved on (the caller
-- reads it again and decides anew).
local cur = redis.call('HGET', KEYS[1], 'version') or '0'
if cur ~= ARGV[1] then
  return 0
end
local nextv = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'version', nextv, 'doc', ARGV[2])
return nextv
