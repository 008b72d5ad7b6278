-- Store an M2M token's record and index it under its owner.
--
-- KEYS[1] the record (hash)          tokend:m2m:{owner}:t:<id>
-- KEYS[2] the owner's index (zset)   tokend:m2m:{owner}:idx
-- ARGV[1] expiry, unix ms (0: never); the record's PEXPIREAT
-- ARGV[2] index score: expiry in unix s, or "+inf"
-- ARGV[3] token id
-- ARGV[4..] record field, value pairs
--
-- Returns 1.
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[1] ~= '0' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
