package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/redisstore/redistest"
)

// TestClusterFailover kills (SIGKILL) a master of a 3-master, 3-replica
// Cluster under load and checks that the store follows the promoted replica
// by itself: nothing pings it (no readiness probe forces a slot map reload),
// calls fail only with ErrUnavailable while the slot has no master, and
// every call succeeds again within 5 s of the promotion. Calls for slots on
// the other masters keep working meanwhile (cluster-require-full-coverage
// no). It logs how many calls failed, for how long, and how long each took.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster and waits for a failover")
	}
	c := redistest.StartClusterReplicas(t, 3, 1,
		"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no")
	s, err := Open(t.Context(), c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	type result struct {
		start, end time.Time
		err        error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	sess := Session{UserID: "42", ClientID: "1001", Scope: "profile", AuthTime: 1_700_000_000}
	record := func(start time.Time, err error) {
		mu.Lock()
		results = append(results, result{start, time.Now(), err})
		mu.Unlock()
	}
	for range 16 {
		wg.Go(func() {
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				// A new family each time: its keys land on any of the masters.
				start := time.Now()
				rt, err := s.CreateRefresh(ctx, sess, time.Minute)
				if err == nil {
					_, err = s.RefreshClient(ctx, rt.Token)
				}
				if err == nil {
					err = s.RevokeRefresh(ctx, rt.Token)
				}
				cancel()
				record(start, err)
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	time.Sleep(500 * time.Millisecond) // load before the crash
	victim, replica := c.MasterFor(t, "tokend:rt:{x}")
	if replica == nil {
		t.Fatal("the victim master has no replica")
	}
	killed := time.Now()
	victim.Stop()
	var promoted time.Time
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if replica.Role() == "master" {
			promoted = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not promoted within 15s of the kill", replica.Addr)
		}
	}
	// Load goes on until a second without failures (at most 6 s).
	for deadline := promoted.Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		var last time.Time
		for _, r := range results {
			if r.err != nil && r.end.After(last) {
				last = r.end
			}
		}
		mu.Unlock()
		if time.Since(last) > time.Second && time.Since(promoted) > time.Second {
			break
		}
	}
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var failed, outage int
	var lastFail time.Time
	var failTime time.Duration
	for _, r := range results {
		if r.err == nil {
			if r.start.After(killed) && r.end.Before(promoted) {
				outage++
			}
			continue
		}
		if !IsUnavailable(r.err) {
			t.Errorf("a call failed with %v, want ErrUnavailable", r.err)
		}
		failed++
		failTime += r.end.Sub(r.start)
		if r.end.After(lastFail) {
			lastFail = r.end
		}
	}
	t.Logf("%d calls (create, read, revoke with WAIT); master killed, replica promoted %v later",
		len(results), promoted.Sub(killed).Round(time.Millisecond))
	if failed > 0 {
		t.Logf("%d calls failed (unavailable), %v each on average; the last one ended %v after the promotion",
			failed, (failTime / time.Duration(failed)).Round(time.Millisecond), lastFail.Sub(promoted).Round(time.Millisecond))
	}
	t.Logf("%d calls succeeded between the kill and the promotion (slots on healthy masters)", outage)
	if failed == 0 {
		t.Error("no call failed: the kill did not hit the load")
	}
	if d := lastFail.Sub(promoted); d > 5*time.Second {
		t.Errorf("calls still failed %v after the promotion, want the store back within 5s", d)
	}
	if outage == 0 {
		t.Error("no call succeeded between the kill and the promotion: slots on healthy masters must keep working")
	}
}
