-- Rotate a refresh token: consume it and store its successor, atomically.
--
-- KEYS[1] family (hash)              ARGV[1] reuse grace (ms)
-- KEYS[2] presented token (hash)     ARGV[2] successor lifetime (ms)
-- KEYS[3] successor token (hash)     ARGV[3] session's absolute lifetime (ms; 0: none)
--                                    ARGV[4] replays of one token allowed in the grace window
--
-- The clock is Redis' own (TIME), so every tokend instance measures the
-- grace window alike.
--
-- The family never forks. Its field gen counts rotations; each token holds
-- the gen it was issued at. Only the head (a token of the family's gen) is
-- consumed normally, which moves the family to the next gen. A consumed
-- token may be presented again inside the grace window (parallel refreshes
-- from one client), ARGV[4] times at most, and only while none of its
-- successors has been used (family gen = token gen + 1): it gets another
-- successor of the same gen. Once one successor is used, its siblings are
-- dead: presenting one is reuse, like presenting a consumed token after the
-- window, and revokes the family. Fields missing in records written before
-- gen existed count as 0.
--
-- No rotation takes the session past created + ARGV[3]: the successor's and
-- the family's lifetimes are cut to what is left of it (a family made to
-- live longer, before the limit was lowered, is cut too), and a token
-- presented after it is unknown (-1).
--
-- Returns {code, user, client, scope, auth_time, created, jkt}, code being:
--    1  rotated: KEYS[3] stored; the family lives at least as long as it
--   -1  unknown or expired token or family, or the session is over (only {code})
--   -2  the family is revoked
--   -3  reuse (consumed token outside the window or replayed too often, or a
--       dead sibling): the family is now revoked
local fam = redis.call('HMGET', KEYS[1], 'revoked', 'user', 'client', 'scope', 'auth_time', 'created', 'gen', 'jkt')
if not fam[2] then
  return {-1}
end
local tok = redis.call('HMGET', KEYS[2], 'state', 'used_at', 'gen', 'replays')
if not tok[1] then
  return {-1}
end
local info = {fam[2], fam[3], fam[4], fam[5], fam[6], fam[8] or ''}
if fam[1] == '1' then
  return {-2, unpack(info)}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local maxlife = tonumber(ARGV[3])
local left = nil
if maxlife > 0 and fam[6] then
  left = tonumber(fam[6]) * 1000 + maxlife - now
  if left <= 0 then
    return {-1}
  end
  if left < ttl then
    ttl = left
  end
end
local fgen = tonumber(fam[7] or '0')
local tgen = tonumber(tok[3] or '0')
local function reused()
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return {-3, unpack(info)}
end
if tok[1] == 'used' then
  if now - tonumber(tok[2]) >= tonumber(ARGV[1]) or fgen ~= tgen + 1 or tonumber(tok[4] or '0') >= tonumber(ARGV[4]) then
    return reused()
  end
  -- used_at keeps the first use, so the window is not extended.
  redis.call('HINCRBY', KEYS[2], 'replays', 1)
else
  if tgen ~= fgen then
    return reused()
  end
  redis.call('HSET', KEYS[2], 'state', 'used', 'used_at', string.format('%d', now))
  redis.call('HSET', KEYS[1], 'gen', tgen + 1)
end
redis.call('HSET', KEYS[3], 'state', 'active', 'gen', tgen + 1)
redis.call('PEXPIRE', KEYS[3], ttl)
local fttl = redis.call('PTTL', KEYS[1])
if fttl < ttl or (left and fttl > left) then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, unpack(info)}
