// Package redisstore is the only package that speaks Redis. It keeps
// refresh-token families, login throttles and API tokens (and, as services
// land, authorization codes and M2M tokens), with every operation that must
// not race done as one Lua script or one atomic command.
//
// Open connects to redis://, rediss://, unix:// or Redis Cluster
// (redis+cluster://host1:port1,host2:port2), or runs an embedded miniredis
// when no URL is given. Connection failures are reported as ErrUnavailable;
// go-redis reconnects by itself when Redis returns.
//
// # Key schema
//
// Every key starts with the prefix ("tokend"). The part in {braces} is the
// Redis Cluster hash tag: keys that one script touches share it. User input
// (usernames, addresses, owners) is hashed before it becomes part of a key.
//
//	key                                   type    TTL                          written by
//	tokend:rt:{<family>}:family           hash    newest token's lifetime      CreateRefresh, RotateRefresh, RevokeFamily
//	  user, client, scope, auth_time, revoked ("0"/"1")
//	tokend:rt:{<family>}:t:<sha256>       hash    tokens.refresh_ttl           CreateRefresh, RotateRefresh
//	  state ("active"/"used"), used_at (unix ms)
//	tokend:throttle:{<sha256(name)>}      string  login_throttle.window        ThrottleTake, ThrottleForgive
//	  attempts counted in the window (name: "user:<lower-case username>" or "addr:<ip>")
//	tokend:apitok:{<id>}                  hash    until expiry (none if none)  CreateAPIToken, DeleteAPIToken, TouchAPITokens
//	  owner, name, secret_hash (hex sha256 of the secret), created, expires, last_used (unix s)
//	tokend:apitok:owner:{<sha256(owner)>} zset    none (pruned on list/create) CreateAPIToken, DeleteAPIToken
//	  API token ids scored by creation time; at most 100 per owner
//
// A refresh token is "<family>.<secret>" (128 + 256 random bits, base64url):
// the family names the hash tag, so a rotation touches one slot. Only the
// token's SHA-256 is stored. Secrets (refresh tokens, API token secrets) are
// high-entropy random strings, so a fast hash is the right one; passwords
// and client secrets are hashed with bcrypt/argon2id (package passhash) and
// never reach Redis at all.
package redisstore
