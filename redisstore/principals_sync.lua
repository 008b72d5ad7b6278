-- Record which user (or client) ids the configuration holds, so that a
-- removal is permanent: an id removed and later configured again starts
-- afresh, and what was issued to it before does not come back.
--
-- KEYS[1] the registry of one kind (hash: id → state)
-- ARGV[1..] the ids the configuration holds now
--
-- A state is "L<cutoff>" for a configured id, cutoff being 0 for an id
-- configured all along and, for an id that came back, the Unix time (s) at
-- which it was removed: what was issued to the id up to then belonged to
-- the removed principal. "R<at>" is an id removed at that time. Time is
-- Redis' own (TIME), so every replica agrees. Running it again with the
-- same ids changes nothing.
--
-- Returns the ids with a non-zero cutoff, as {id, cutoff, id, cutoff, ...}.
local now = redis.call('TIME')[1]
local configured = {}
for i = 1, #ARGV do
  configured[ARGV[i]] = true
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, 1) == 'L' and not configured[all[i]] then
    redis.call('HSET', KEYS[1], all[i], 'R' .. now)
  end
end
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local state = redis.call('HGET', KEYS[1], id)
  if not state then
    redis.call('HSET', KEYS[1], id, 'L0')
  elseif string.sub(state, 1, 1) == 'R' then
    local removed = string.sub(state, 2)
    redis.call('HSET', KEYS[1], id, 'L' .. removed)
    out[#out + 1] = id
    out[#out + 1] = removed
  elseif state ~= 'L0' then
    out[#out + 1] = id
    out[#out + 1] = string.sub(state, 2)
  end
end
return out
