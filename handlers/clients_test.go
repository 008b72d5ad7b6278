package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
)

// countingLimiter is a Limiter in memory that counts its calls.
type countingLimiter struct {
	mu              sync.Mutex
	takes, forgives int
	counts          map[string]int
}

func (l *countingLimiter) LimitTake(_ context.Context, _ time.Duration, groups ...redisstore.LimitGroup) ([]time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes++
	waits := make([]time.Duration, len(groups))
	for i, g := range groups {
		for _, lim := range g.Limits {
			if l.counts[g.Tag+lim.Name] >= lim.Max {
				waits[i] = time.Minute
			}
		}
		if waits[i] == 0 {
			for _, lim := range g.Limits {
				l.counts[g.Tag+lim.Name]++
			}
		}
	}
	return waits, nil
}

func (l *countingLimiter) LimitForgive(_ context.Context, groups ...redisstore.LimitGroup) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgives++
	for _, g := range groups {
		for _, lim := range g.Limits {
			l.counts[g.Tag+lim.Name] = max(0, l.counts[g.Tag+lim.Name]-1)
		}
	}
	return nil
}

func checkClients(t testing.TB) (*Clients, *countingLimiter) {
	t.Helper()
	hash, err := passhash.HashBcrypt("right-secret", 4)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClients([]config.Client{{ID: "svc", SecretHash: hash}}, passhash.NewSecretCache(100, time.Hour))
	l := &countingLimiter{counts: map[string]int{}}
	c.Limit(ClientLimit{Limiter: l, MaxFailures: 3, Window: time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return c, l
}

// TestCheckConsultsTheLimiterOnlyToHash: a secret that verified recently
// passes without the limiter (no Redis round trip); a secret to hash is
// counted first and taken back when right; wrong ones stay counted until
// the address is throttled, even for the right secret not yet cached.
func TestCheckConsultsTheLimiterOnlyToHash(t *testing.T) {
	c, l := checkClients(t)
	ctx := context.Background()
	step := func(name, secret, addr string, want connect.Code, takes, forgives int) {
		t.Helper()
		l.takes, l.forgives = 0, 0
		_, err := c.Check(ctx, "svc", secret, addr)
		if got := codeOf(err); err != nil && got != want || err == nil && want != 0 {
			t.Fatalf("%s: %v, want %v", name, err, want)
		}
		if l.takes != takes || l.forgives != forgives {
			t.Fatalf("%s: %d takes, %d forgives; want %d, %d", name, l.takes, l.forgives, takes, forgives)
		}
	}
	step("first success hashes", "right-secret", "10.0.0.1", 0, 1, 1)
	step("cached success", "right-secret", "10.0.0.1", 0, 0, 0)
	step("cached success elsewhere", "right-secret", "10.0.0.9", 0, 0, 0)
	for range 3 {
		step("wrong secret", "wrong", "10.0.0.2", connect.CodeUnauthenticated, 1, 0)
	}
	step("throttled", "wrong", "10.0.0.2", connect.CodeResourceExhausted, 1, 0)
	step("unknown client, same address", "wrong", "10.0.0.2", connect.CodeResourceExhausted, 1, 0)
	step("another address", "wrong", "10.0.0.3", connect.CodeUnauthenticated, 1, 0)
}

func TestAddrTag(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":             "a:10.0.0.1",
		"::ffff:10.0.0.1":      "a:10.0.0.1",
		"2001:db8:1:2:3:4:5:6": "a:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "a:2001:db8:1:2::/64",
		"not-an-address":       "a:not-an-address",
	} {
		if got := addrTag(in); got != want {
			t.Errorf("addrTag(%s) = %s, want %s", in, got, want)
		}
	}
}

// BenchmarkClientAuthenticateCached is a client authentication whose
// secret the cache holds, without the limiter (tokend before the limiter).
func BenchmarkClientAuthenticateCached(b *testing.B) {
	c, _ := checkClients(b)
	_, _ = c.Check(context.Background(), "svc", "right-secret", "10.0.0.1")
	for b.Loop() {
		if _, ok := c.Authenticate("svc", "right-secret"); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkClientCheckCached is the same through Check, the throttled
// path every endpoint takes: no limiter call on a cached success.
func BenchmarkClientCheckCached(b *testing.B) {
	c, l := checkClients(b)
	ctx := context.Background()
	_, _ = c.Check(ctx, "svc", "right-secret", "10.0.0.1")
	for b.Loop() {
		if _, err := c.Check(ctx, "svc", "right-secret", "10.0.0.1"); err != nil {
			b.Fatal(err)
		}
	}
	if l.takes != 1 {
		b.Fatalf("%d limiter calls", l.takes)
	}
}

// TestCheckJoinedCallersGetTheirOwnErrors: concurrent checks of one wrong
// secret share one verification; each caller's error is still errBadClient
// and is answered with a connect error of its own (connect writes
// metadata into the error it answers with).
func TestCheckJoinedCallersGetTheirOwnErrors(t *testing.T) {
	c, l := checkClients(t)
	l.counts = map[string]int{}
	c.limit.MaxFailures = 1000
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Check(context.Background(), "svc", "wrong", "10.0.0.1") })
	}
	wg.Wait()
	seen := map[*connect.Error]bool{}
	for _, err := range errs {
		ce, _ := connectError(err)
		if !errors.Is(err, errBadClient) || ce.Code() != connect.CodeUnauthenticated {
			t.Fatalf("joined caller got %v", err)
		}
		if seen[ce] {
			t.Fatal("two callers share one connect error")
		}
		seen[ce] = true
	}
}

// codeOf is the connect code a handler's error is answered with.
func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	ce, _ := connectError(err)
	return ce.Code()
}
