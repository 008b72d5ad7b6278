-- Register an owner with the M2M sweep (a script only so that it can share
-- a pipeline of scripts with m2m_create.lua).
--
-- KEYS[1] the set of owners with indexed tokens
-- ARGV[1] the owner's digest
--
-- Returns 1 if added, 0 if it was there.
return redis.call('SADD', KEYS[1], ARGV[1])
