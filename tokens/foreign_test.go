package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// foreignIssuer is a foreign issuer over httptest whose behaviour a test
// changes: its keys (rotation), its JWKS Cache-Control, failing (500) or
// hanging (until the request is given up).
type foreignIssuer struct {
	*httptest.Server
	mu           sync.Mutex
	keys         map[string]ed25519.PrivateKey
	cacheControl string
	fail, hang   bool
	fetches      atomic.Int64 // JWKS documents served or attempted
	requests     atomic.Int64 // every request (discovery and JWKS)
}

func newForeignIssuer(t *testing.T) *foreignIssuer {
	t.Helper()
	iss := &foreignIssuer{keys: map[string]ed25519.PrivateKey{}}
	iss.rotate("k1")
	iss.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		fail, hang, cc := iss.fail, iss.hang, iss.cacheControl
		iss.mu.Unlock()
		iss.requests.Add(1)
		if r.URL.Path == "/jwks" {
			iss.fetches.Add(1)
		}
		switch {
		case hang:
			<-r.Context().Done()
			return
		case fail:
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss.URL, "jwks_uri": iss.URL + "/jwks"})
		case "/jwks":
			if cc != "" {
				w.Header().Set("Cache-Control", cc)
			}
			var keys []map[string]string
			iss.mu.Lock()
			for kid, k := range iss.keys {
				keys = append(keys, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid,
					"x": base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))})
			}
			iss.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(iss.Close)
	return iss
}

// rotate replaces the issuer's keys by a new one named kid.
func (iss *foreignIssuer) rotate(kid string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = map[string]ed25519.PrivateKey{kid: priv}
}

func (iss *foreignIssuer) set(f func(*foreignIssuer)) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	f(iss)
}

// sign makes an assertion signed with the issuer's current key kid.
func (iss *foreignIssuer) sign(t *testing.T, kid string, now time.Time) string {
	t.Helper()
	iss.mu.Lock()
	k := iss.keys[kid]
	iss.mu.Unlock()
	if k == nil {
		_, k, _ = ed25519.GenerateKey(rand.Reader) // a key the issuer does not publish
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": iss.URL, "sub": "owner-1", "aud": "http://tokend.test",
		"jti": rand.Text(), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clocked returns ForeignKeys whose clock the test moves.
func clocked() (*ForeignKeys, *time.Time) {
	f := NewForeignKeys(nil)
	now := time.Now()
	var mu sync.Mutex
	f.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return f, &now
}

func verifyWith(f *ForeignKeys, iss *foreignIssuer, token string) error {
	_, err := f.Verify(context.Background(), token, iss.URL, 30*time.Second)
	return err
}

func TestJWKSCacheHonoursMaxAgeWithinBounds(t *testing.T) {
	for _, c := range []struct {
		cc   string
		want time.Duration
	}{
		{"", jwksDefaultTTL},
		{"public, max-age=600", 10 * time.Minute},
		{"max-age=5", jwksMinTTL},
		{"max-age=99999999", jwksMaxTTL},
		{"no-store", jwksMinTTL},
		{"max-age=junk", jwksDefaultTTL},
	} {
		if got := cacheTTL(c.cc); got != c.want {
			t.Errorf("cacheTTL(%q) = %v, want %v", c.cc, got, c.want)
		}
	}

	iss := newForeignIssuer(t)
	iss.set(func(i *foreignIssuer) { i.cacheControl = "max-age=600" })
	a, now := clocked()
	assertion := iss.sign(t, "k1", *now)
	for range 5 {
		if err := verifyWith(a, iss, assertion); err != nil {
			t.Fatal(err)
		}
	}
	*now = now.Add(9 * time.Minute)
	_ = verifyWith(a, iss, assertion)
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within max-age, want 1", n)
	}
	*now = now.Add(2 * time.Minute)
	_ = verifyWith(a, iss, assertion)
	if n := iss.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after max-age, want 2", n)
	}
}

func TestJWKSSingleFlightAndNegativeCache(t *testing.T) {
	iss := newForeignIssuer(t)
	iss.set(func(i *foreignIssuer) { i.fail = true })
	a, now := clocked()
	assertion := iss.sign(t, "k1", *now)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := verifyWith(a, iss, assertion); err == nil {
				t.Errorf("against a failing issuer: %v", err)
			}
		})
	}
	wg.Wait()
	if n := iss.requests.Load(); n != 1 {
		t.Fatalf("50 calls against a failing issuer made %d requests, want 1", n)
	}
	iss.set(func(i *foreignIssuer) { i.fail = false })
	*now = now.Add(10 * time.Second)
	if err := verifyWith(a, iss, assertion); err == nil {
		t.Fatal("a failure was not remembered: the issuer was asked again within 30s")
	}
	*now = now.Add(30 * time.Second)
	if err := verifyWith(a, iss, assertion); err != nil {
		t.Fatalf("after the negative cache: %v", err)
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}

	// A failing refresh keeps the keys it had (up to 24h past the fetch).
	iss.set(func(i *foreignIssuer) { i.fail = true })
	*now = now.Add(time.Hour)
	if err := verifyWith(a, iss, iss.sign(t, "k1", *now)); err != nil {
		t.Errorf("stale keys while the issuer fails: %v", err)
	}
	*now = now.Add(jwksMaxTTL)
	if err := verifyWith(a, iss, iss.sign(t, "k1", *now)); err == nil {
		t.Error("keys used more than 24h past their fetch")
	}
}

func TestJWKSHangingIssuerIsOneShortFetch(t *testing.T) {
	iss := newForeignIssuer(t)
	iss.set(func(i *foreignIssuer) { i.hang = true })
	a, now := clocked()
	a.fetchTimeout = 200 * time.Millisecond
	assertion := iss.sign(t, "k1", *now)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := verifyWith(a, iss, assertion); err == nil {
				t.Error("verified against a hanging issuer")
			}
		})
	}
	wg.Wait()
	if n := iss.requests.Load(); n != 1 {
		t.Errorf("20 calls against a hanging issuer made %d requests, want 1", n)
	}
	// The failure is remembered: the next caller does not wait again.
	done := make(chan error, 1)
	go func() { done <- verifyWith(a, iss, assertion) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("verified")
		}
	case <-time.After(5 * time.Second): // the test's own bound, far above the fetch timeout
		t.Fatal("a caller waited on a hanging issuer that had just failed")
	}
}

func TestJWKSUnknownKidRefetchBounded(t *testing.T) {
	iss := newForeignIssuer(t)
	a, now := clocked()
	if err := verifyWith(a, iss, iss.sign(t, "k1", *now)); err != nil {
		t.Fatal(err)
	}
	// Unknown kids within a minute of the fetch: no new fetch.
	for range 10 {
		if err := verifyWith(a, iss, iss.sign(t, "nope", *now)); err == nil {
			t.Fatal("verified with an unpublished key")
		}
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for unknown kids within a minute, want 1", n)
	}
	// The issuer rotates; a minute later its new kid is fetched, once.
	iss.rotate("k2")
	*now = now.Add(jwksUnknownKid)
	for range 10 {
		if err := verifyWith(a, iss, iss.sign(t, "k2", *now)); err != nil {
			t.Fatalf("rotated key: %v", err)
		}
	}
	if n := iss.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after a rotation, want 2", n)
	}
}
