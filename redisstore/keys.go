package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
)

// keys builds every key tokend writes. The part in {braces} is the Redis
// Cluster hash tag: keys one script touches together share it, so they land
// in one slot. User input never shapes a key directly: it is hashed first.
type keys struct{ prefix string }

// family: HASH user, client, scope, auth_time, revoked ("0"/"1").
// TTL: the lifetime of the family's newest refresh token.
func (k keys) family(fam string) string { return k.prefix + ":rt:{" + fam + "}:family" }

// refresh: HASH state ("active"/"used"), used_at (unix ms).
// TTL: the token's lifetime. Named by the SHA-256 of the token.
func (k keys) refresh(fam, tokenHash string) string {
	return k.prefix + ":rt:{" + fam + "}:t:" + tokenHash
}

// throttle: STRING counter of login attempts. TTL: the throttle window,
// from the first attempt.
func (k keys) throttle(name string) string { return k.prefix + ":throttle:{" + digest(name) + "}" }

// apiToken: HASH owner, name, secret_hash (hex SHA-256), created (unix s),
// expires (unix s, 0 = never), last_used (unix s, 0 = never).
// TTL: until expires, none for tokens without expiry (deleted by DeleteToken).
func (k keys) apiToken(id string) string { return k.prefix + ":apitok:{" + id + "}" }

// apiTokenOwner: ZSET of the owner's API token ids, scored by creation time.
// No TTL; entries whose record is gone are pruned when the owner lists or
// creates tokens.
func (k keys) apiTokenOwner(owner string) string {
	return k.prefix + ":apitok:owner:{" + digest(owner) + "}"
}

// digest is a short hex SHA-256 of user input, for use inside key names.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
