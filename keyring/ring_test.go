package keyring

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/tokens"
)

// clock is a settable clock shared by the replicas of a test.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time       { return time.Unix(c.t.Load(), 0) }
func (c *clock) add(d time.Duration)  { c.t.Add(int64(d / time.Second)) }
func newClock(start time.Time) *clock { c := new(clock); c.t.Store(start.Unix()); return c }
func testKEK(t *testing.T, b byte) *KEK {
	return mustKEK(t, strings.Repeat(string(rune('A'+b)), 43)+"=")
}
func mustKEK(t *testing.T, s string) *KEK {
	t.Helper()
	k, err := ParseKEK([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	lead     = 10 * time.Second
	lifetime = time.Minute
	every    = time.Hour
)

func opts(kek *KEK, c *clock) Options {
	return Options{KEK: kek, Alg: tokens.AlgEdDSA, RotateEvery: every, Lead: lead, TokenLifetime: lifetime,
		PollEvery: time.Second, Now: c.now}
}

func realStore(t *testing.T) *redisstore.Store {
	t.Helper()
	srv := redistest.Start(t)
	st, err := redisstore.Open(context.Background(), srv.URL, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func kids(ks *tokens.KeySet) []string {
	var out []string
	for _, k := range ks.Keys() {
		out = append(out, k.ID())
	}
	return out
}

func sign(t *testing.T, ks *tokens.KeySet, at time.Time) string {
	t.Helper()
	tok, err := ks.Sign(&tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "https://t", Subject: "1",
		IssuedAt: jwt.NewNumericDate(at), ExpiresAt: jwt.NewNumericDate(at.Add(lifetime))}, Kind: tokens.KindUser})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Two replicas over one real Redis: the first creates the ring, the second
// reads it; a rotation on one is published on both before it signs; the old
// key retires when the new one activates and leaves after the longest
// token lifetime.
func TestRingLifecycle(t *testing.T) {
	ctx := context.Background()
	st := realStore(t)
	c := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kek := testKEK(t, 0)
	a, err := Open(ctx, st, opts(kek, c))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, st, opts(kek, c))
	if err != nil {
		t.Fatal(err)
	}
	first := a.Keys().Signer().ID()
	if b.Keys().Signer().ID() != first || len(a.List()) != 1 {
		t.Fatalf("second replica made a ring of its own: %v vs %v", kids(a.Keys()), kids(b.Keys()))
	}
	if strings.Contains(string(mustRing(t, st).Doc), "PRIVATE") {
		t.Fatal("the ring in Redis holds a private key in the clear")
	}

	e, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx); !errors.Is(err, ErrPending) {
		t.Fatalf("second rotation while one is pending: got %v, want ErrPending", err)
	}
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*Ring{"a": a, "b": b} {
		if got := kids(r.Keys()); len(got) != 2 || got[0] != first || got[1] != e.KID {
			t.Errorf("%s before activation: keys %v, want [%s %s]", name, got, first, e.KID)
		}
	}
	oldTok := sign(t, a.Keys(), c.now())

	c.add(lead)
	for _, r := range []*Ring{a, b} {
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.Keys().Signer().ID(); got != e.KID {
			t.Errorf("after the lead: signer %s, want %s", got, e.KID)
		}
	}
	v := tokens.NewVerifier(b.Keys(), "https://t", tokens.WithClock(c.now))
	if _, err := v.Verify(oldTok); err != nil {
		t.Errorf("token of the retired key while it is published: %v", err)
	}

	c.add(lifetime)
	for _, r := range []*Ring{a, b} {
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := kids(r.Keys()); len(got) != 1 || got[0] != e.KID {
			t.Errorf("after the last token's lifetime: keys %v, want [%s]", got, e.KID)
		}
	}
	if _, err := tokens.NewVerifier(b.Keys(), "https://t").Verify(oldTok); err == nil {
		t.Error("token of a removed key verified")
	}
	if err := a.read(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(a.List()); n != 1 {
		t.Errorf("the removed key is still in Redis: %d keys", n)
	}
}

// Many replicas due for a scheduled rotation at once: exactly one rotates.
func TestRingScheduledRotationOnce(t *testing.T) {
	ctx := context.Background()
	st := realStore(t)
	c := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kek := testKEK(t, 0)
	var logs syncBuffer
	var rings []*Ring
	for range 8 {
		o := opts(kek, c)
		o.Log = slog.New(slog.NewJSONHandler(&logs, nil))
		r, err := Open(ctx, st, o)
		if err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	c.add(every - lead)
	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Go(func() {
			if err := r.Tick(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ring := mustRing(t, st)
	if n := strings.Count(string(ring.Doc), `"kid"`); n != 2 {
		t.Fatalf("after one due rotation by 8 replicas: %d keys in Redis, want 2", n)
	}
	if n := strings.Count(logs.String(), `"event":"key.rotated"`); n != 2 { // the first key, and this one
		t.Fatalf("8 replicas due at once rotated %d times, want once (after the first key)", n-1)
	}
	c.add(lead)
	for _, r := range rings {
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if r.Keys().Signer().ID() != rings[0].Keys().Signer().ID() {
			t.Error("replicas disagree on the signer")
		}
	}
}

// A replica with another key-encryption key says so, and the keys never
// reach it.
func TestRingWrongKEK(t *testing.T) {
	ctx := context.Background()
	st := realStore(t)
	c := newClock(time.Now())
	if _, err := Open(ctx, st, opts(testKEK(t, 0), c)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, st, opts(testKEK(t, 1), c))
	if err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("open with another KEK: got %v", err)
	}
}

func TestParseKEK(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if _, err := ParseKEK([]byte(good + "\n")); err != nil {
		t.Errorf("32 bytes of base64 with a newline: %v", err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := ParseKEK([]byte(bad)); err == nil {
			t.Errorf("ParseKEK(%q): want an error", bad)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustRing(t *testing.T, st *redisstore.Store) redisstore.SigningRing {
	t.Helper()
	r, err := st.SigningRing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
