package passhash

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// SecretCache remembers recent successful verifications, so that a client
// presenting the same secret on every request pays the slow hash once per ttl.
//
// An entry is keyed by HMAC-SHA256 under a key drawn at random per cache, over
// the client id, the encoded hash and the secret: the cache never holds a
// secret or anything an attacker could test guesses against offline, and a
// changed hash in the configuration misses. Only successes are cached. The
// cache holds at most maxEntries entries; when full it drops expired entries,
// then an arbitrary one. Concurrent misses for the same secret share one
// verification. It is safe for concurrent use.
//
// A nil *SecretCache, or one made with maxEntries ≤ 0 or ttl ≤ 0, caches
// nothing: its Verify is plain Verify.
type SecretCache struct {
	ttl      time.Duration
	perShard int
	shards   []cacheShard
	macs     sync.Pool // of hash.Hash: HMAC-SHA256 under the per-cache key
	// Concurrent misses with the same client and secret share one
	// verification: a burst of connections presenting a new secret pays
	// the slow hash once, not once per connection.
	flight singleflight.Group

	// Replaced in tests.
	verify func(encoded, secret string) error
	now    func() time.Time
}

type cacheKey [sha256.Size]byte

type cacheShard struct {
	mu      sync.RWMutex
	expires map[cacheKey]time.Time
}

// NewSecretCache returns a cache of at most maxEntries verified secrets, each
// remembered for ttl.
func NewSecretCache(maxEntries int, ttl time.Duration) *SecretCache {
	c := &SecretCache{ttl: ttl, verify: Verify, now: time.Now}
	if maxEntries <= 0 || ttl <= 0 {
		return c
	}
	// Sharding only pays under contention, and rounds the bound down: small
	// caches keep one shard so that they hold exactly maxEntries.
	n := 16
	if maxEntries < 16*n {
		n = 1
	}
	c.perShard = maxEntries / n
	c.shards = make([]cacheShard, n)
	for i := range c.shards {
		c.shards[i].expires = make(map[cacheKey]time.Time)
	}
	key := make([]byte, sha256.Size)
	rand.Read(key)
	c.macs.New = func() any { return hmac.New(sha256.New, key) }
	return c
}

// Verify is Verify with the cache in front: a secret that verified against
// this client's encoded hash within ttl returns nil without hashing.
func (c *SecretCache) Verify(clientID, encoded, secret string) error {
	if c == nil || len(c.shards) == 0 {
		return Verify(encoded, secret)
	}
	k := c.key(clientID, encoded, secret)
	sh := &c.shards[binary.LittleEndian.Uint64(k[:8])%uint64(len(c.shards))]
	now := c.now()
	sh.mu.RLock()
	exp, ok := sh.expires[k]
	sh.mu.RUnlock()
	if ok && now.Before(exp) {
		return nil
	}
	_, err, _ := c.flight.Do(string(k[:]), func() (any, error) { return nil, c.verify(encoded, secret) })
	if err != nil {
		return err
	}
	sh.mu.Lock()
	sh.put(k, now.Add(c.ttl), now, c.perShard)
	sh.mu.Unlock()
	return nil
}

// Cached reports whether secret verified against this client's encoded
// hash within ttl, so that Verify would answer without hashing. It never
// hashes: a caller can afford to ask before deciding to pay for Verify.
func (c *SecretCache) Cached(clientID, encoded, secret string) bool {
	if c == nil || len(c.shards) == 0 {
		return false
	}
	k := c.key(clientID, encoded, secret)
	sh := &c.shards[binary.LittleEndian.Uint64(k[:8])%uint64(len(c.shards))]
	sh.mu.RLock()
	exp, ok := sh.expires[k]
	sh.mu.RUnlock()
	return ok && c.now().Before(exp)
}

// key is the HMAC of the three fields, each preceded by its length so that no
// two different triples share an input.
func (c *SecretCache) key(clientID, encoded, secret string) cacheKey {
	m := c.macs.Get().(hash.Hash)
	m.Reset()
	buf := make([]byte, 0, 24+len(clientID)+len(encoded)+len(secret))
	for _, f := range [...]string{clientID, encoded, secret} {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	m.Write(buf)
	clear(buf) // holds the secret
	var k cacheKey
	m.Sum(k[:0])
	c.macs.Put(m)
	return k
}

// put stores k; the caller holds the write lock. Eviction scans the shard,
// which is cheap next to the hash that was just computed to get here.
func (s *cacheShard) put(k cacheKey, exp, now time.Time, max int) {
	if _, ok := s.expires[k]; !ok && len(s.expires) >= max {
		for key, e := range s.expires {
			if !now.Before(e) {
				delete(s.expires, key)
			}
		}
		for key := range s.expires { // map order is randomised: an arbitrary victim
			if len(s.expires) < max {
				break
			}
			delete(s.expires, key)
		}
	}
	s.expires[k] = exp
}

// len counts the entries, expired or not.
func (c *SecretCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].expires)
		c.shards[i].mu.RUnlock()
	}
	return n
}
