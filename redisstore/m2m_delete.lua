-- DeleteTokens for one batch of one owner's token ids: live tokens are
-- blacklisted (once, for ever: bl is set to the time, ver incremented, the id
-- added to the owner's blacklist set); expired ones are deleted with their
-- index and blacklist entries. Ids not in this owner's index are ignored, so
-- nobody can touch another owner's tokens. An id whose record is gone while
-- its index entry says it has not expired (a record lost with a Redis
-- failover) is blacklisted all the same: its index entry stays, so the sweep
-- removes both at the token's expiry.
--
-- KEYS[1] the owner's index (zset)
-- KEYS[2] the owner's blacklist (set)
-- KEYS[3..] the records of ARGV[1..], in order
-- ARGV[1..] token ids
--
-- Time is Redis' own (TIME), so every replica agrees.
--
-- Returns {blacklisted, deleted}.
local now = tonumber(redis.call('TIME')[1])
local blacklisted, deleted = 0, 0
for i = 1, #ARGV do
  local id, rec = ARGV[i], KEYS[i + 2]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score then
    local f = redis.call('HMGET', rec, 'exp', 'bl')
    local exp, bl = f[1], f[2]
    if not exp and (score == 'inf' or tonumber(score) > now) then
      blacklisted = blacklisted + redis.call('SADD', KEYS[2], id)
    elseif not exp or (exp ~= '0' and tonumber(exp) <= now) then
      redis.call('DEL', rec)
      redis.call('ZREM', KEYS[1], id)
      redis.call('SREM', KEYS[2], id)
      deleted = deleted + 1
    elseif bl == '0' then
      redis.call('HSET', rec, 'bl', now)
      redis.call('HINCRBY', rec, 'ver', 1)
      redis.call('SADD', KEYS[2], id)
      blacklisted = blacklisted + 1
    end
  end
end
return {blacklisted, deleted}
