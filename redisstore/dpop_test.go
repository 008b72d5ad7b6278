package redisstore

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// runDPoPConformance is the conformance suite's part for DPoP: proof replay records, nonce
// rotation, and the key a refresh family is bound to.
func runDPoPConformance(t *testing.T, newStore func(t *testing.T) (*Store, redis.UniversalClient)) {
	id := strings.Repeat("A", 42) + "Q"

	t.Run("DPoPProofOnce", func(t *testing.T) {
		s, c := newStore(t)
		ctx := t.Context()
		// Many replicas presenting one proof at once: exactly one records it.
		var fresh atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				replayed, err := s.RecordDPoPProof(ctx, id, 2*time.Second)
				if err != nil {
					t.Error(err)
				}
				if !replayed {
					fresh.Add(1)
				}
			})
		}
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("%d presentations accepted, want 1", fresh.Load())
		}
		if pttl := c.PTTL(ctx, s.keys.dpopProof(id)).Val(); pttl <= 0 || pttl > 2*time.Second {
			t.Errorf("replay record TTL %v, want ≤ 2s", pttl)
		}
		advance(c, 2100*time.Millisecond)
		if replayed, err := s.RecordDPoPProof(ctx, id, time.Second); err != nil || replayed {
			t.Errorf("after the record expired: replayed=%v err=%v, want accepted", replayed, err)
		}
		// A malformed id is refused without touching Redis.
		if replayed, _ := s.RecordDPoPProof(ctx, "x", time.Second); !replayed {
			t.Error("malformed id accepted")
		}
	})

	t.Run("DPoPProofRidesGate", func(t *testing.T) {
		s, _ := newStore(t)
		ctx := t.Context()
		first := s.DPoPProofCheck(id, time.Minute)
		if refused, err := Settle(ctx, first); err != nil || refused || first.Refused() {
			t.Fatalf("first: refused=%v err=%v", refused, err)
		}
		again := s.DPoPProofCheck(id, time.Minute)
		if refused, err := Settle(ctx, s.SessionCheck(NewFamilyID()), again); err != nil || !refused || !again.Refused() {
			t.Fatalf("replay in a gate: refused=%v (check %v) err=%v", refused, again.Refused(), err)
		}
	})

	t.Run("DPoPNonceRotation", func(t *testing.T) {
		s, c := newStore(t)
		ctx := t.Context()
		cur, prev, err := s.RotateDPoPNonce(ctx, time.Second, "n1")
		if err != nil || cur != "n1" || prev != "" {
			t.Fatalf("first: %q %q %v", cur, prev, err)
		}
		// Another replica within the period sees the same nonce.
		if cur, prev, _ = s.RotateDPoPNonce(ctx, time.Second, "n2"); cur != "n1" || prev != "" {
			t.Fatalf("within the period: %q %q, want n1", cur, prev)
		}
		advance(c, 1100*time.Millisecond)
		if cur, prev, _ = s.RotateDPoPNonce(ctx, time.Second, "n3"); cur != "n3" || prev != "n1" {
			t.Fatalf("after the period: %q %q, want n3 n1", cur, prev)
		}
		if cur, prev, _ = s.RotateDPoPNonce(ctx, time.Second, "n4"); cur != "n3" || prev != "n1" {
			t.Fatalf("right after the rotation: %q %q, want n3 n1", cur, prev)
		}
	})

	t.Run("DPoPBoundFamily", func(t *testing.T) {
		s, _ := newStore(t)
		ctx := t.Context()
		bound := Session{UserID: "42", Scope: "profile", AuthTime: 1_700_000_000, JKT: "thumb"}
		rt, err := s.CreateRefresh(ctx, bound, hour)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
		if err != nil || got.JKT != "thumb" {
			t.Fatalf("rotated session %+v, %v: want jkt kept", got, err)
		}
		plain, _ := s.CreateRefresh(ctx, Session{UserID: "42", AuthTime: 1}, hour)
		if _, got, _ := s.RotateRefresh(ctx, plain.Token, rot(hour, 0)); got.JKT != "" {
			t.Fatalf("unbound family came back bound to %q", got.JKT)
		}
	})
}
