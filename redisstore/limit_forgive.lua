-- Take back one counted attempt from each counter (an attempt that
-- succeeded, or one another group refused).
--
-- KEYS[i]  counter i (STRING), all in one slot; never goes below zero
--          (DECR keeps the TTL; a counter at zero is deleted)
--
-- Returns the number of counters changed.
local changed = 0
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    changed = changed + 1
    if redis.call('DECR', k) <= 0 then
      redis.call('DEL', k)
    end
  end
end
return changed
