package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
)

// keys builds every key tokend writes; nothing else in the package spells a
// key. The part in {braces} is the Redis Cluster hash tag: keys that one
// script or transaction touches together share it, so they land in one slot.
// User input never shapes a key directly: it is validated (ids tokend made)
// or hashed first (names typed by users).
//
// The schema table in doc.go lists the same keys; keep the two in step.
type keys struct{ prefix string }

// family: HASH user, client, scope, auth_time (unix s), created (unix s),
// revoked ("0"/"1"), gen (rotations so far). TTL: as long as the family's newest refresh token.
// Written by create_refresh.lua, rotate_refresh.lua, revoke_family.lua.
func (k keys) family(fam string) string { return k.prefix + ":rt:{" + fam + "}:family" }

// refresh: HASH state ("active"/"used"), used_at (unix ms, once used), gen
// (the family's gen it was issued at), replays (grace-window replays).
// Named by the hex SHA-256 of the token, never the token. TTL: the token's
// lifetime. Written by create_refresh.lua, rotate_refresh.lua.
func (k keys) refresh(fam, tokenHash string) string {
	return k.prefix + ":rt:{" + fam + "}:t:" + tokenHash
}

// code: HASH user, client, redirect, scope, challenge, method (PKCE; ""
// when none), issued (unix s), used ("0"/"1"). Named by the hex SHA-256 of
// the code, never the code, under the hash tag of the refresh-token family
// the exchange starts (the code is "<fam>.<secret>"), so that the exchange
// consumes the code and creates the family in one script. TTL:
// tokens.code_ttl, kept after use until then to recognise replays. Written
// by create_code.lua, exchange_code.lua.
func (k keys) code(fam, codeHash string) string {
	return k.prefix + ":rt:{" + fam + "}:code:" + codeHash
}

// limit: STRING counter of the rate limiter (failed logins and client
// authentications): attempts in a fixed window. Tag and name are hashed;
// the counters of one group share the tag's hash tag. TTL: the window,
// from the first attempt. Written by limit_take.lua, limit_forgive.lua.
func (k keys) limit(tag, name string) string {
	return k.prefix + ":limit:{" + digest(tag) + "}:" + digest(name)
}

// dpopProof: STRING "1", the replay record of a DPoP proof, named by the base64url SHA-256 of its
// key's thumbprint and its jti (dpop.Proof.ReplayID). TTL: as long as the proof's iat is
// accepted. Written by DPoPProofCheck (SET NX PX).
func (k keys) dpopProof(id string) string { return k.prefix + ":dpop:jti:{" + id + "}" }

// dpopNonce: HASH cur, prev (the fleet's current and previous DPoP nonce), at (unix ms of the last
// rotation). TTL: three rotation periods. Written by dpop_nonce.lua.
func (k keys) dpopNonce() string { return k.prefix + ":dpop:nonce" }

// apiToken: HASH owner, name, secret_hash (hex SHA-256), created (unix s),
// expires (unix s, 0 = never), last_used (unix s, 0 = never).
// TTL: until expires; none for tokens without expiry (removed by
// DeleteAPIToken). Written by apitoken_create.lua, apitoken_touch.lua,
// apitoken_delete.lua.
func (k keys) apiToken(id string) string { return k.prefix + ":apitok:{" + id + "}" }

// apiTokenOwner: ZSET of the owner's API token ids, scored by creation time
// (unix s). No TTL; entries whose record is gone are pruned when the owner
// lists or creates tokens. Written by apitoken_index.lua, ListAPITokens,
// DeleteAPIToken.
func (k keys) apiTokenOwner(owner string) string {
	return k.prefix + ":apitok:owner:{" + digest(owner) + "}"
}

// m2mToken: HASH name, owner, client, sub, aud and scope (JSON arrays), iat
// and exp (unix s; exp 0 = never), claims (the assertion's claims, JSON; ""
// when none), ver (record version), bl (unix s when blacklisted, 0 = not).
// Keyed by the owner's digest (hash tag) and the token id (jti). TTL: the
// token's expiry; none for tokens without one. Written by m2m_create.lua,
// m2m_delete.lua.
func (k keys) m2mToken(owner, id string) string { return k.m2mTokenOf(digest(owner), id) }

// m2mTokenOf is m2mToken for an owner's digest, for callers that build
// several of the owner's keys (one SHA-256 for all of them).
func (k keys) m2mTokenOf(ownerDigest, id string) string {
	return k.prefix + ":m2m:{" + ownerDigest + "}:t:" + id
}

// m2mIndex: ZSET of the owner's token ids scored by expiry (unix s, +inf
// for none). No TTL: entries of expired tokens are removed by SweepM2M.
func (k keys) m2mIndex(owner string) string { return k.m2mIndexOf(digest(owner)) }

func (k keys) m2mIndexOf(ownerDigest string) string {
	return k.prefix + ":m2m:{" + ownerDigest + "}:idx"
}

// m2mBlacklistOf: SET of the owner's blacklisted token ids, named by the
// owner's digest. No TTL: entries are removed with the index entry once the
// token has expired.
func (k keys) m2mBlacklistOf(ownerDigest string) string {
	return k.prefix + ":m2m:{" + ownerDigest + "}:bl"
}

// m2mDue: ZSET of the digests of owners with indexed tokens, for the
// sweep, scored by the earliest expiry (unix s) in the owner's index as
// last seen: the sweep visits only owners whose score has passed, so its
// cost follows the expirations, not the number of owners. Creation lowers
// an owner's score (m2m_owner.lua); the sweep raises it to the next expiry
// or removes an owner whose index is empty (m2m_due.lua).
func (k keys) m2mDue() string { return k.prefix + ":m2m:due" }

// m2mOwners: the SET of owner digests that m2mDue replaced. Nothing writes
// it any more; SweepM2M moves what a store written by an older tokend holds
// into m2mDue and deletes it.
func (k keys) m2mOwners() string { return k.prefix + ":m2m:owners" }

// assertionID: STRING "1", present while a foreign client assertion with
// this issuer and jti is unexpired, so that it is accepted once. Named by
// the digest of both. TTL: the assertion's expiry (plus leeway). Written by
// UseAssertionID.
func (k keys) assertionID(issuer, jti string) string {
	return k.prefix + ":ajti:{" + digest(issuer+"\x00"+jti) + "}"
}

// configured: HASH of the user (kind "users") or client ("clients") ids the
// configuration has held: id → "L<cutoff>" while configured (cutoff: 0, or,
// for an id that came back, the Unix time it was removed), "R<at>" once
// removed. No
// TTL: one field per id ever configured. Written by SyncConfigured.
func (k keys) configured(kind string) string { return k.prefix + ":configured:{" + kind + "}" }

// digest is a short hex SHA-256 of user input, for use inside key names.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// signingRing: HASH version (replacements so far), doc (the signing-key
// ring as JSON, private keys sealed under a key-encryption key Redis never
// sees). No TTL: one key. Written by signing_swap.lua (SwapSigningRing).
func (k keys) signingRing() string { return k.prefix + ":signing:{ring}" }
