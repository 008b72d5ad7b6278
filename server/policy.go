package server

import "time"

// Internal policy: numbers an operator has no reason to change, each named
// once. What an operator may want to change is configuration (config.Default
// holds those defaults, docs/operations.md documents them).
const (
	// secretCacheSize and secretCacheTTL bound the one cache of verified
	// client secrets (passhash.SecretCache): only the first call with a
	// secret pays the slow hash, and a cached verification is trusted this
	// long.
	secretCacheSize = 10000
	secretCacheTTL  = 10 * time.Minute
	// m2mSweepEvery is how often each replica removes expired M2M index and
	// blacklist entries (redisstore.Store.SweepM2M).
	m2mSweepEvery = time.Minute
	// usageFlushEvery is how often API tokens' last-used times are written
	// to Redis, batched (handlers.TokenService.RecordUsage).
	usageFlushEvery = 5 * time.Second
	// compressMinBytes is the smallest response message tokend compresses
	// for a client that accepts compression.
	compressMinBytes = 1024
)
