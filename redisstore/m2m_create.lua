-- Store an M2M token's record and index it under its owner, unless the
-- owner already holds as many live tokens as allowed.
--
-- KEYS[1] the record (hash)          tokend:m2m:{owner}:t:<id>
-- KEYS[2] the owner's index (zset)   tokend:m2m:{owner}:idx
-- ARGV[1] expiry, unix ms (0: never); the record's PEXPIREAT
-- ARGV[2] index score: expiry in unix s, or "+inf"
-- ARGV[3] token id
-- ARGV[4] the most live tokens an owner may hold (0: no limit)
-- ARGV[5..] record field, value pairs
--
-- Live tokens are the index entries that have not expired by Redis' own
-- clock (TIME), blacklisted ones included (they are kept, and take room,
-- until they expire): ZCOUNT over (now, +inf], O(log n) whatever the
-- owner holds, with expired entries left for the sweep. An index holding
-- fewer entries than the limit, expired ones included, is under it
-- whatever the clock says: ZCARD (O(1)) settles the common case, and only
-- an owner near its limit pays for TIME and ZCOUNT.
--
-- Returns 1, or 0 (nothing written) when the owner is at the limit.
local max = tonumber(ARGV[4])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then
  local now = redis.call('TIME')[1]
  if redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') >= max then
    return 0
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if ARGV[1] ~= '0' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
