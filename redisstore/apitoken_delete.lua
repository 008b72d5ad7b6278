-- Delete an API token if it belongs to the given owner.
--
-- KEYS[1] token record (hash)   ARGV[1] owner
--
-- Returns 1 if deleted, 0 if there is no such token of that owner.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
