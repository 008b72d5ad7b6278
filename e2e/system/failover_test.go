package system

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// TestClusterFailoverUnderLoad runs tokend on a Redis Cluster of 3 masters
// and 3 replicas (cluster-require-full-coverage no, as docs/operations.md
// advises) and kills a master (SIGKILL) while 16 workers log in, refresh
// and log out. Nothing probes tokend during the failover (no /readyz, no
// gRPC health): it must find the promoted replica by itself. Calls fail
// only with unavailable, and none fails more than 5 s after the promotion.
// With replicas attached, the default durability makes each logout and
// rotation wait for a replica.
func TestClusterFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster and waits for a failover")
	}
	c := redistest.StartClusterReplicas(t, 3, 1,
		"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no")
	key := signingKey(t)
	p := startTokend(t, func(addr string) string { return configYAML(t, addr, c.URL, key, "") })

	type call struct {
		start, end time.Time
		err        error
	}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	record := func(start time.Time, err error) bool {
		mu.Lock()
		calls = append(calls, call{start, time.Now(), err})
		mu.Unlock()
		return err == nil
	}
	for range 16 {
		wg.Go(func() {
			auth := authv1connect.NewAuthServiceClient(h2c(), p.URL, connect.WithProtoJSON())
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				login, err := auth.Token(ctx, passwordLogin("alice", alicePassword))
				if record(start, err) {
					start = time.Now()
					var ref *connect.Response[authv1.TokenResponse]
					ref, err = auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: login.Msg.RefreshToken}))
					if record(start, err) {
						start = time.Now()
						_, err = auth.Logout(ctx, connect.NewRequest(&authv1.LogoutRequest{RefreshToken: ref.Msg.RefreshToken}))
						record(start, err)
					}
				}
				cancel()
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	time.Sleep(time.Second)
	victim, replica := c.MasterFor(t, "tokend:rt:{x}")
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
		for _, r := range calls {
			if r.err != nil && r.end.After(last) {
				last = r.end
			}
		}
		mu.Unlock()
		if time.Since(last) > time.Second && time.Since(promoted) > time.Second {
			break
		}
	}
	close(stop)
	wg.Wait()

	var failed, ok, outage int
	var lastFail time.Time
	for _, c := range calls {
		if c.err == nil {
			ok++
			if c.start.After(killed) && c.end.Before(promoted) {
				outage++
			}
			continue
		}
		failed++
		if connect.CodeOf(c.err) != connect.CodeUnavailable {
			t.Errorf("a call failed with %v, want unavailable", c.err)
		}
		if c.end.After(lastFail) {
			lastFail = c.end
		}
	}
	t.Logf("%d calls succeeded (%d between the kill and the promotion), %d failed with unavailable; "+
		"replica promoted %v after the kill; the last failure ended %v after the promotion",
		ok, outage, failed, promoted.Sub(killed).Round(time.Millisecond), lastFail.Sub(promoted).Round(time.Millisecond))
	if failed == 0 {
		t.Error("no call failed: the kill did not hit the load")
	}
	if d := lastFail.Sub(promoted); d > 5*time.Second {
		t.Errorf("calls still failed %v after the promotion, want tokend back within 5s", d)
	}
	if strings.Contains(p.logs.String(), "panic") {
		t.Fatalf("panic in logs:\n%s", p.logs)
	}
}
