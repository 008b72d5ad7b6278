-- The rate limiter: one attempt against a group of counters, all or none.
-- Every replica runs this same script on the shared Redis, so the limits
-- hold for the whole fleet.
--
-- KEYS[i]    counter i (STRING: attempts in its window). All of one call's
--            counters share a hash tag (one Cluster slot).
-- ARGV[1]    window (ms): a counter lives this long from its first attempt
--            (a fixed window)
-- ARGV[1+i]  the most attempts counter i allows within its window
--
-- If every counter is below its limit, counts one attempt against each and
-- returns 0. Otherwise counts nothing and returns the milliseconds until
-- the last full counter's window ends (≥ 1), the caller's Retry-After.
-- A refused attempt adds to no counter, so a caller refused for one reason
-- (its address) cannot use up a budget it shares with others (a username).
local wait = 0
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', k)
    if ttl < 0 then -- never expected; a counter without a TTL is repaired
      redis.call('PEXPIRE', k, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    wait = math.max(wait, ttl, 1)
  end
end
if wait > 0 then
  return wait
end
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 or redis.call('PTTL', k) < 0 then
    redis.call('PEXPIRE', k, ARGV[1])
  end
end
return 0
