package passhash

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counted returns a cache whose hashing is counted and whose clock is *now.
func counted(max int, ttl time.Duration) (*SecretCache, *atomic.Int64, *time.Time) {
	c := NewSecretCache(max, ttl)
	var calls atomic.Int64
	now := time.Unix(1_700_000_000, 0)
	c.verify = func(encoded, secret string) error {
		calls.Add(1)
		return Verify(encoded, secret)
	}
	c.now = func() time.Time { return now }
	return c, &calls, &now
}

func TestSecretCache(t *testing.T) {
	c, calls, now := counted(100, time.Minute)
	h := cheap("right")
	step := func(name, client, encoded, secret string, wantErr error, wantCalls int64) {
		t.Helper()
		before := calls.Load()
		if err := c.Verify(client, encoded, secret); !errors.Is(err, wantErr) {
			t.Errorf("%s: Verify = %v, want %v", name, err, wantErr)
		}
		if got := calls.Load() - before; got != wantCalls {
			t.Errorf("%s: hashed %d times, want %d", name, got, wantCalls)
		}
	}
	step("first success", "c1", h, "right", nil, 1)
	step("repeat hits", "c1", h, "right", nil, 0)
	step("repeat hits again", "c1", h, "right", nil, 0)
	step("other secret misses", "c1", h, "wrong", errMismatch, 1)
	step("failures are not cached", "c1", h, "wrong", errMismatch, 1)
	step("other client misses", "c2", h, "right", nil, 1)
	h2 := cheap("right")
	step("changed hash misses", "c1", h2, "right", nil, 1)
	step("malformed", "c1", "nope", "right", errMalformed, 1)

	*now = now.Add(59 * time.Second)
	step("before expiry", "c1", h, "right", nil, 0)
	*now = now.Add(time.Second)
	step("at expiry", "c1", h, "right", nil, 1)
	step("refreshed", "c1", h, "right", nil, 0)
}

func TestSecretCacheBound(t *testing.T) {
	for _, max := range []int{1, 10, 255, 1000} {
		c, calls, now := counted(max, time.Minute)
		h := cheap("s")
		for i := range 3 * max {
			if err := c.Verify(fmt.Sprint("client", i), h, "s"); err != nil {
				t.Fatal(err)
			}
			if n := c.len(); n > max {
				t.Fatalf("max %d: %d entries", max, n)
			}
		}
		if c.len() < max*9/10 {
			t.Errorf("max %d: only %d entries kept", max, c.len())
		}
		// Expired entries make room before live ones are evicted.
		*now = now.Add(time.Hour)
		calls.Store(0)
		c.Verify("fresh", h, "s")
		c.Verify("fresh", h, "s")
		if calls.Load() != 1 {
			t.Errorf("max %d: fresh entry hashed %d times", max, calls.Load())
		}
	}
}

func TestSecretCacheDisabled(t *testing.T) {
	h := cheap("s")
	for name, c := range map[string]*SecretCache{
		"nil":       nil,
		"0 entries": NewSecretCache(0, time.Minute),
		"0 ttl":     NewSecretCache(10, 0),
	} {
		if err := c.Verify("c", h, "s"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := c.Verify("c", h, "t"); !errors.Is(err, errMismatch) {
			t.Errorf("%s: %v, want errMismatch", name, err)
		}
	}
}

func TestSecretCacheConcurrent(t *testing.T) {
	c := NewSecretCache(300, time.Minute)
	hashes := make([]string, 8)
	for i := range hashes {
		hashes[i] = cheap(fmt.Sprint("secret", i))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 400 {
				k := (g + i) % len(hashes)
				client := fmt.Sprint("client", i%50)
				if err := c.Verify(client, hashes[k], fmt.Sprint("secret", k)); err != nil {
					t.Error(err)
					return
				}
				if err := c.Verify(client, hashes[k], "wrong"); !errors.Is(err, errMismatch) {
					t.Errorf("wrong secret: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 300 {
		t.Errorf("%d entries, max 300", n)
	}
}

func BenchmarkSecretCacheHit(b *testing.B) {
	c := NewSecretCache(1024, time.Hour)
	h, _ := Hash("benchmark secret")
	if err := c.Verify("m2m-svc", h, "benchmark secret"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Verify("m2m-svc", h, "benchmark secret"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestSecretCacheSharesConcurrentMisses: a burst of callers presenting the
// same new secret (a client's whole connection pool, at start) pays the slow
// hash once, not once per caller.
func TestSecretCacheSharesConcurrentMisses(t *testing.T) {
	c := NewSecretCache(100, time.Minute)
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	c.verify = func(encoded, secret string) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
		return Verify(encoded, secret)
	}
	h := cheap("s3cret")
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if err := c.Verify("client", h, "s3cret"); err != nil {
				t.Error(err)
			}
		})
	}
	<-started
	time.Sleep(100 * time.Millisecond) // let the others reach the cache and queue behind the first
	close(release)
	wg.Wait()
	// 1 in practice; 2 if a caller arrived in the instant between the shared
	// verification finishing and its result entering the cache.
	if n := calls.Load(); n > 2 {
		t.Errorf("32 concurrent misses verified %d times, want 1", n)
	}
}

func TestSecretCacheCached(t *testing.T) {
	c, calls, now := counted(100, time.Minute)
	h := cheap("right")
	if c.Cached("c1", h, "right") {
		t.Fatal("cached before any Verify")
	}
	_ = c.Verify("c1", h, "right")
	_ = c.Verify("c1", h, "wrong")
	before := calls.Load()
	for _, tc := range []struct {
		client, secret string
		want           bool
	}{{"c1", "right", true}, {"c1", "wrong", false}, {"c2", "right", false}} {
		if got := c.Cached(tc.client, h, tc.secret); got != tc.want {
			t.Errorf("Cached(%s, %s) = %v, want %v", tc.client, tc.secret, got, tc.want)
		}
	}
	if calls.Load() != before {
		t.Error("Cached hashed")
	}
	*now = now.Add(time.Minute)
	if c.Cached("c1", h, "right") {
		t.Error("cached after expiry")
	}
	var nilCache *SecretCache
	if nilCache.Cached("c1", h, "right") {
		t.Error("a nil cache holds nothing")
	}
}
