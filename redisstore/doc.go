// Package redisstore is the only package of tokend that speaks Redis: refresh
// tokens and their families, authorization codes, login throttling and API
// token records.
//
// A Store works over one Redis server, a Redis Cluster, a master found
// through Redis Sentinel, or an embedded in-memory miniredis (Open with an
// empty URL, for development). On a Cluster it reloads the slot map itself
// when a node cannot be reached, so it follows a promoted replica within a
// second. Writes that revoke or rotate end their pipeline with a WAIT for
// replicas (Durability) and fail with ErrUnavailable when the replicas do
// not confirm them. Every
// operation that must not race is one Lua script or one atomic command, never
// a read-then-write from Go; keys that one script touches share a hash tag,
// so Cluster works. Scripts live in the *.lua files beside this one, each
// with a comment naming its KEYS, ARGV and return codes; TTLs are set inside
// them. Secrets are stored only as SHA-256 hashes, and user input never
// shapes a key: names typed by users are hashed, ids tokend made are
// validated.
//
// Errors are sentinels checked with errors.Is: ErrNotFound (redis.Nil never
// leaves the package), ErrReused, ErrRevoked, ErrLimit, ErrCodeReused,
// ErrRedirectMismatch, ErrVerifierMismatch, and ErrUnavailable, which wraps
// every failure to reach Redis so that callers can answer "unavailable" and
// retry. Timeouts are short, so calls fail fast while
// Redis is away, and go-redis reconnects by itself when it returns.
//
// # Key schema
//
// P is Options.Prefix ("tokend" by default); {braces} mark the hash tag.
// fam is a refresh-token family id (22 base64url characters, random),
// sha256(token) the hex SHA-256 of a refresh token, sha256(code) that of an
// authorization code, h(x) the first 16 bytes of SHA-256(x) in hex.
//
//	key                          type    TTL                                written by
//	---------------------------  ------  ---------------------------------  ------------------------------------
//	P:rt:{fam}:family            HASH    as long as the family's newest     CreateRefresh, RotateRefresh,
//	                                     token (rotation extends it)        RevokeRefresh, RevokeFamily,
//	                                                                        ExchangeCode
//	  fields: user, client, scope, auth_time (unix s), created (unix s), revoked ("0"/"1"),
//	  gen (rotations so far; missing = 0), jkt (DPoP key thumbprint the family is bound to; missing
//	  or "" = unbound)
//	P:rt:{fam}:t:sha256(token)   HASH    the token's lifetime (kept after   CreateRefresh, RotateRefresh,
//	                                     use, to detect reuse)              ExchangeCode
//	  fields: state ("active"/"used"), used_at (unix ms, Redis clock), gen (the family's gen it was
//	  issued at; missing = 0), replays (grace-window replays so far)
//	P:rt:{fam}:code:sha256(code) HASH    tokens.code_ttl; kept after use    CreateCode, ExchangeCode
//	                                     until then, to detect replays
//	  fields: user, client, redirect, scope, challenge, method (PKCE, "" when none), issued (unix s),
//	  used ("0"/"1"); fam is the family the exchange starts, in one script with the code's consumption
//	P:limit:{h(tag)}:h(name)     STRING  the limiter's window, from the     LimitTake, LimitForgive
//	                                     first attempt
//	  value: attempts in the window; tag: a client address or a username, name: the counter
//	P:apitok:{id}                HASH    until the token expires; none      CreateAPIToken, TouchAPITokens,
//	                                     for tokens without expiry          DeleteAPIToken
//	  fields: owner, name, secret_hash (hex SHA-256), created, expires (0 = never), last_used (unix s, 0 = never)
//	P:apitok:owner:{h(owner)}    ZSET    none; members whose record is      CreateAPIToken, ListAPITokens,
//	                                     gone are pruned on list/create     DeleteAPIToken
//	  members: the owner's API token ids, scored by creation time (unix s)
//	P:m2m:{h(owner)}:t:<jti>     HASH    the M2M token's expiry; none for   CreateM2MToken, DeleteM2MTokens
//	                                     tokens without expiry
//	  fields: name, owner, client, sub, aud and scope (JSON arrays), iat, exp (unix s, 0 = never),
//	  claims (client assertion's claims, JSON), ver, bl (unix s when blacklisted, 0 = not)
//	P:m2m:{h(owner)}:idx         ZSET    none; expired members removed by   CreateM2MToken, DeleteM2MTokens,
//	                                     SweepM2M                           SweepM2M
//	  members: the owner's M2M token ids, scored by expiry (unix s; +inf = never)
//	P:m2m:{h(owner)}:bl          SET     none; members removed with their   DeleteM2MTokens, SweepM2M
//	                                     index entry once expired
//	  members: the owner's blacklisted M2M token ids (the bearer check reads the record's bl, and
//	  refuses a token whose record is missing)
//	P:m2m:due                    ZSET    none; owners with an empty index   CreateM2MToken, SweepM2M
//	                                     are removed by SweepM2M
//	  members: h(owner) of every owner with indexed M2M tokens, scored by the earliest expiry in
//	  its index (unix s): the sweep visits only owners whose score has passed. Replaces
//	  P:m2m:owners (a SET of the same members), which the first sweep moves here and deletes.
//	P:configured:{users}         HASH    none (one field per id ever    SyncConfigured
//	P:configured:{clients}               configured)
//	  fields: id → "L<cutoff>" while configured (cutoff: 0, or, for an id that came back, the Unix
//	  time it was removed: what was issued to it until then stays refused), "R<at>" once removed
//	P:signing:{ring}             HASH    none (one key)                     SwapSigningRing
//	  fields: version (replacements so far), doc (the signing keys as JSON, each private key
//	  sealed with AES-256-GCM under the key-encryption key, which is never in Redis)
//	P:ajti:{h(iss NUL jti)}      STRING  the client assertion's expiry      UseAssertionID
//	  value: "1" while a foreign client assertion (issuer, jti) is unexpired: it is accepted once
//	P:dpop:jti:{id}              STRING  twice the DPoP iat window, plus 1s DPoPProofCheck
//	  value: "1"; id: base64url SHA-256 of a DPoP proof's key thumbprint and jti (seen once)
//	P:dpop:nonce                 HASH    three nonce rotation periods       RotateDPoPNonce
//	  fields: cur, prev (the fleet's DPoP nonces), at (unix ms of the last rotation, Redis clock)
//
// The scripts behind those methods: create_refresh.lua, rotate_refresh.lua,
// revoke_refresh.lua, revoke_family.lua, create_code.lua, exchange_code.lua,
// throttle_take.lua, throttle_forgive.lua, apitoken_*.lua, m2m_*.lua,
// signing_swap.lua.
//
// A refresh token is "<fam>.<secret>" (secret: 256 random bits, base64url):
// the family id in the token is what lets a token's key and its family's key
// share a hash tag. An authorization code has the same shape, naming the
// family its exchange will start. Refresh, code and throttle keys always carry a TTL, so
// storage does not grow without bound; API tokens without expiry live until
// deleted. Refresh tokens, authorization codes and API token secrets are
// high-entropy random strings, so a fast hash (SHA-256) is the right one;
// passwords and client secrets never reach Redis.
//
// # Growth rules
//
// How each key grows with the state it holds, and what bounds the work on it
// (bench/scale measures them; docs/performance.md has the numbers):
//
//   - Every per-record key (family, refresh token, code, API token, M2M
//     token) is a small hash of fixed fields; one record is one key, and a
//     call touches O(1) of them. Only the M2M owner's index and blacklist,
//     the API-token owner index, the sweep's schedule and the configured-ids
//     hashes grow with the state.
//   - P:m2m:{h(owner)}:idx and :bl grow with one owner's live M2M tokens
//     (MaxM2MPerOwner caps them). Creation costs O(log n) in them (ZCOUNT,
//     ZADD); GetTokens {} and DeleteTokens {} walk the index with ZSCAN,
//     500 ids a step, DeleteTokens one script per 100 ids, so neither tokend's
//     memory nor any one Redis command grows with the owner's size; only the
//     number of steps does.
//   - All of one owner's M2M keys share the owner's hash tag, so on a
//     Cluster one owner lives on one master: the per-owner limit is checked
//     in the creating script, and a bearer check reads one record by the
//     token's own key, in the same round trip as the other checks. One owner
//     is bounded by one master's throughput (each creation costs that master
//     about 25 µs of CPU, about 40,000 a second) and memory; owners spread
//     over all masters.
//   - P:m2m:due holds one member per owner with indexed tokens and lives on
//     one slot; every creation runs one small script on it. The sweep reads
//     only the owners due (ZRANGEBYSCORE, 500 at a time), pipelines four
//     plain commands per owner (at most 200 entries each) and reschedules
//     100 owners per script run, so a sweep costs Redis time in proportion
//     to the owners with tokens expired since the last one (about 17 µs per
//     expired entry when most owners are small), not to the owners or the
//     tokens live.
//   - P:apitok:owner:{h(owner)} grows with one owner's API tokens (the
//     per-owner limit caps it); P:configured:{kind} with the ids ever
//     configured.
//
// Scripts read the clock with TIME (Redis' clock, the same for every tokend
// instance), which needs Redis 5 or later (effects replication).
package redisstore
