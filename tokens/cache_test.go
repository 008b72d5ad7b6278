package tokens

import (
	"fmt"
	"testing"
	"time"
)

// A remembered token must be refused exactly when a fresh verification would refuse it: the cache
// skips the signature check, never the clock.
func TestVerifyCacheAgreesOnExpiry(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	tok := mustSign(t, ks, testClaims(now())) // exp = now + 15m
	exp := now().Add(15 * time.Minute)
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		clock := now()
		cached := NewVerifier(ks, testIssuer, WithLeeway(leeway), WithClock(func() time.Time { return clock }))
		if _, err := cached.Verify(tok); err != nil { // now it is remembered
			t.Fatal(err)
		}
		for _, d := range []time.Duration{-time.Second, -time.Millisecond, 0, leeway - time.Millisecond, leeway,
			leeway + time.Millisecond, leeway + time.Second, time.Hour} {
			clock = exp.Add(d)
			fresh := NewVerifier(ks, testIssuer, WithLeeway(leeway), WithCacheSize(0), WithClock(func() time.Time { return clock }))
			_, wantErr := fresh.Verify(tok)
			_, gotErr := cached.Verify(tok)
			if (gotErr == nil) != (wantErr == nil) {
				t.Errorf("leeway %v, exp%+v: cached verifier says %v, a fresh one %v", leeway, d, gotErr, wantErr)
			}
		}
		// Once refused for expiry, the token stays refused (it was dropped, and re-verifying fails).
		clock = exp.Add(leeway + time.Hour)
		if _, err := cached.Verify(tok); err == nil {
			t.Errorf("leeway %v: expired token accepted on a second look", leeway)
		}
	}
}

// Each caller gets its own Claims: changing one never reaches the next caller.
func TestVerifyCacheReturnsCopies(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	tok := mustSign(t, ks, testClaims(now()))
	v := NewVerifier(ks, testIssuer, WithClock(now))
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	first.Subject, first.Kind, first.Scope = "1", KindAPIToken, "admin"
	second, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if second.Subject != "42" || second.Kind != KindUser || second.Scope != "profile read" {
		t.Fatalf("second caller saw the first caller's changes: %+v", second)
	}
}

// A token that differs from a remembered one in any byte is verified from scratch.
func TestVerifyCacheKeysOnEveryByte(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	tok := mustSign(t, ks, testClaims(now()))
	v := NewVerifier(ks, testIssuer, WithClock(now))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	for i := range len(tok) {
		if tok[i] == '.' {
			continue
		}
		b := []byte(tok)
		b[i] ^= 0x01
		if b[i] == '.' {
			continue
		}
		if _, err := v.Verify(string(b)); err == nil {
			t.Fatalf("token with byte %d changed accepted", i)
		}
	}
}

// The cache stays within its size, however many tokens pass.
func TestVerifyCacheBounded(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	const size = 64
	v := NewVerifier(ks, testIssuer, WithClock(now), WithCacheSize(size))
	for i := range 2000 {
		c := testClaims(now())
		c.ID = fmt.Sprint("jti-", i)
		if _, err := v.Verify(mustSign(t, ks, c)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range v.cache.shards {
		n += len(v.cache.shards[i].m)
	}
	if n == 0 || n > size {
		t.Fatalf("cache holds %d entries, want 1..%d", n, size)
	}
}
