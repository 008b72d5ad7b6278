-- Start a refresh-token family and store its first token, atomically.
--
-- KEYS[1] family (hash)              ARGV[1] user id
-- KEYS[2] first token (hash, by      ARGV[2] client id ("" for first-party login)
--         the token's SHA-256)       ARGV[3] scope
--                                    ARGV[4] auth_time (unix s)
--                                    ARGV[5] lifetime (ms), for both keys
--                                    ARGV[6] DPoP key thumbprint the family is bound to ("": none)
--
-- Returns 1 when created, 0 when the family id is already taken (the caller
-- made a colliding id: nothing is written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
start_family(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]) -- family.lua
return 1
