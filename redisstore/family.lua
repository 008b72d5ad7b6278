-- The refresh-token family's layout, written in one place: this fragment is
-- prepended to the scripts that start a family (create_refresh.lua,
-- exchange_code.lua; see familyScript).
--
-- The family (HASH): user, client ("" for a first-party sign-in), scope,
-- auth_time (unix s, the sign-in), created (unix s, Redis TIME), revoked
-- ("0" or "1"), jkt (the DPoP key its refresh tokens are bound to, "" for
-- none); rotate_refresh.lua adds gen. Its first token (HASH, keyed
-- by the token's SHA-256): state "active". Both live for ttl_ms.
local function start_family(family, token, user, client, scope, auth_time, ttl_ms, jkt)
  local now = redis.call('TIME')
  redis.call('HSET', family, 'user', user, 'client', client, 'scope', scope,
    'auth_time', auth_time, 'created', now[1], 'revoked', '0', 'jkt', jkt or '')
  redis.call('PEXPIRE', family, ttl_ms)
  redis.call('HSET', token, 'state', 'active')
  redis.call('PEXPIRE', token, ttl_ms)
end

