package dpop_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/dpop/dpoptest"
)

// expiringReplay is the fleet's replay record with Redis' expiry, on a clock of its own.
type expiringReplay struct {
	mu    sync.Mutex
	now   func() time.Time
	until map[string]time.Time
}

func (m *expiringReplay) record(_ context.Context, id string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = map[string]time.Time{}
	}
	if u, ok := m.until[id]; ok && m.now().Before(u) {
		return true, nil
	}
	m.until[id] = m.now().Add(ttl)
	return false, nil
}

// Two replicas whose clocks differ by 3 s share the replay record. A proof
// with iat at the window's future edge, spent on the replica ahead, is accepted
// again by the replica behind unless the record outlives the window by more
// than the skew: the second use must be refused.
func TestAttackReplayAcrossSkewedReplicas(t *testing.T) {
	const window = time.Minute
	real := time.Now()
	now := func() time.Time { return real }
	rec := &expiringReplay{now: now}
	ahead := dpop.NewChecker(dpop.Options{Issuer: issuer, Window: window, Replay: rec.record, Now: now})
	behind := dpop.NewChecker(dpop.Options{Issuer: issuer, Window: window, Replay: rec.record,
		Now: func() time.Time { return now().Add(-3 * time.Second) }})

	proof := dpoptest.NewES256().Proof("POST", issuer+path, dpoptest.Opts{IATOffset: window})
	p, err := ahead.Check(context.Background(), proof, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := ahead.Record(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	real = real.Add(2*window + 2*time.Second) // the record has expired
	p, err = behind.Check(context.Background(), proof, target)
	if err != nil {
		t.Logf("refused by iat: %v", err)
		return
	}
	if err := behind.Record(context.Background(), p); err == nil {
		t.Fatalf("a spent proof was accepted again by a replica 3 s behind, %v after its first use", 2*window+2*time.Second)
	}
}

// The cost of checking a proof whose jwk is an RSA-8192 key with e = 2^31-1 and
// whose signature is junk (what an unauthenticated caller can send to
// RefreshToken or a public client's ExchangeToken), beside an honest ES256 proof.
func BenchmarkAttackCheckProof(b *testing.B) {
	c := dpop.NewChecker(dpop.Options{Issuer: issuer, Window: time.Minute})
	b.Run("ES256", func(b *testing.B) {
		proof := dpoptest.NewES256().Proof("POST", issuer+path, dpoptest.Opts{})
		for b.Loop() {
			if _, err := c.Check(context.Background(), proof, target); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RSA8192-e2^31-1-junk", func(b *testing.B) {
		proof := costlyProof(issuer + path)
		for b.Loop() {
			if _, err := c.Check(context.Background(), proof, target); err == nil {
				b.Fatal("junk accepted")
			}
		}
	})
}
