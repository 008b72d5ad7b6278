// Package keyring keeps tokend's signing keys in Redis, shared by every
// replica, and rotates them.
//
// The ring is one document in Redis (redisstore.SigningRing): for each key
// its kid, algorithm, private key sealed with AES-256-GCM under a
// key-encryption key (KEK) that every replica reads from its configuration
// and that is never written to Redis, and the times of its life:
//
//	next     published in the JWKS, not yet signing (from Published to Activates)
//	active   signs new tokens (from Activates until the next key activates)
//	retired  published, no longer signing, until the last token it signed has
//	         expired (Removes); then it leaves the ring
//
// A new key activates no sooner than Lead after it is published: Lead is the
// JWKS cache lifetime plus the time replicas take to see a change, so every
// verifier that caches the JWKS for its max-age knows the key before the
// first token carries it. States follow from the times and the clock, so every
// replica switches signer at the same moment without further writes.
//
// Rotation (scheduled every RotateEvery, or on demand) is a compare-and-set
// of the whole document on its version, one Lua script: of replicas rotating
// at once exactly one wins, the others read the winner's ring. Every replica
// reads the ring every PollEvery and replaces its tokens.KeySet when what it
// should publish or sign with changes.
package keyring
