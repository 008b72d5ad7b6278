package system

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// acked is what a load worker got acknowledged: API token secrets and
// refresh tokens that tokend answered with success.
type acked struct {
	mu       sync.Mutex
	secrets  []string
	refresh  []string
	failures map[connect.Code]int
	slowest  time.Duration // the longest failed call
	creating int           // API token creations attempted
	cut      []string      // unavailable for another reason than a refused connection
}

// maxAPITokens bounds the API tokens one load phase creates, so that two
// phases stay under the 100 a user may hold.
const maxAPITokens = 40

func (a *acked) fail(err error, took time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failures == nil {
		a.failures = map[connect.Code]int{}
	}
	a.failures[connect.CodeOf(err)]++
	a.slowest = max(a.slowest, took)
	if connect.CodeOf(err) == connect.CodeUnavailable && !strings.Contains(err.Error(), "connection refused") {
		a.cut = append(a.cut, err.Error())
	}
}

// load runs workers against p until stop is closed: each logs alice in
// (a new refresh-token family) and, while fewer than maxAPITokens were
// made in this phase (a user may hold 100), creates an API token with the
// session, recording every acknowledged result. It returns when every worker has
// finished its last call.
func load(t *testing.T, url string, workers int, stop <-chan struct{}, a *acked) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			auth := authv1connect.NewAuthServiceClient(h2c(), url, connect.WithProtoJSON())
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				begin := time.Now()
				login, err := auth.Token(ctx, passwordLogin("alice", alicePassword))
				if err != nil {
					a.fail(err, time.Since(begin))
					cancel()
					time.Sleep(20 * time.Millisecond)
					continue
				}
				a.mu.Lock()
				a.refresh = append(a.refresh, login.Msg.RefreshToken)
				full := a.creating >= maxAPITokens
				a.creating++
				a.mu.Unlock()
				if full {
					cancel()
					continue
				}
				api := tokenservicev1alpha1connect.NewTokenServiceClient(h2c(), url,
					withBearer([]connect.ClientOption{connect.WithProtoJSON()}, login.Msg.AccessToken)...)
				begin = time.Now()
				created, err := api.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "load"}))
				cancel()
				if err != nil {
					a.fail(err, time.Since(begin))
					continue
				}
				a.mu.Lock()
				a.secrets = append(a.secrets, created.Msg.Token.Secret)
				a.mu.Unlock()
			}
		})
	}
	return &wg
}

// checkAcked verifies that every acknowledged API token secret still buys
// an access token and every acknowledged refresh token still rotates.
func checkAcked(t *testing.T, url string, a *acked) {
	t.Helper()
	ctx := context.Background()
	auth := authv1connect.NewAuthServiceClient(h2c(), url, connect.WithProtoJSON())
	api := tokenservicev1alpha1connect.NewTokenServiceClient(h2c(), url, connect.WithProtoJSON())
	for _, s := range a.secrets {
		if _, err := api.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: s})); err != nil {
			t.Fatalf("acknowledged API token lost: %v", err)
		}
	}
	for _, r := range a.refresh {
		if _, err := auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: r})); err != nil {
			t.Fatalf("acknowledged refresh token lost: %v", err)
		}
	}
}

// TestRedisKilledUnderLoad kills redis-server (SIGKILL, as a crash) while
// workers log in and create API tokens, leaves it down, and starts it again
// on the same AOF. During the gap calls fail with unavailable, never
// anything else; tokend recovers without a restart; and everything
// acknowledged before the kill still works after it. Redis runs with
// appendfsync always here: with compose.yaml's everysec a crash may lose up
// to a second of acknowledged writes, which is Redis' contract, not
// tokend's.
func TestRedisKilledUnderLoad(t *testing.T) {
	redis := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	key := signingKey(t)
	p := startTokend(t, func(addr string) string { return configYAML(t, addr, redis.URL, key, "") })

	var before, during acked
	stop := make(chan struct{})
	wg := load(t, p.URL, 8, stop, &before)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	stop = make(chan struct{})
	wg = load(t, p.URL, 8, stop, &during)
	time.Sleep(300 * time.Millisecond)
	redis.Stop()
	time.Sleep(2 * time.Second)
	redis.Restart()
	time.Sleep(1 * time.Second)
	close(stop)
	wg.Wait()

	if len(before.secrets) == 0 || len(before.refresh) == 0 {
		t.Fatalf("no load before the kill: %d secrets, %d refresh tokens", len(before.secrets), len(before.refresh))
	}
	for code, n := range during.failures {
		if code != connect.CodeUnavailable {
			t.Errorf("%d calls failed with %v during the outage, want only unavailable", n, code)
		}
	}
	if during.failures[connect.CodeUnavailable] == 0 {
		t.Fatal("no call saw the outage")
	}
	t.Logf("before the kill: %d API tokens, %d sessions acknowledged; during: %d acknowledged, failures %v, slowest failure %v",
		len(before.secrets), len(before.refresh), len(during.secrets), during.failures, during.slowest)

	// Recovered by itself: new calls succeed on the same process.
	if code, body := postJSON(t, p.URL+"/auth.v1.AuthService/Token",
		`{"passwordCredential":{"username":"alice","password":"`+alicePassword+`"}}`); code != 200 {
		t.Fatalf("after restart: %d %s", code, body)
	}
	checkAcked(t, p.URL, &before)
	checkAcked(t, p.URL, &during) // acknowledged during the outage's edges too
	if strings.Contains(p.logs.String(), "panic") {
		t.Fatalf("panic in logs:\n%s", p.logs)
	}
}

// TestSIGTERMUnderLoad sends SIGTERM while workers call: tokend stops
// accepting, finishes what is in flight, exits 0, and every call it
// acknowledged works on the next process over the same Redis.
func TestSIGTERMUnderLoad(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	config := func(addr string) string { return configYAML(t, addr, redis.URL, key, "") }
	p := startTokend(t, config)

	var a acked
	stop := make(chan struct{})
	wg := load(t, p.URL, 8, stop, &a)
	time.Sleep(time.Second)
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(15 * time.Second); err != nil {
		t.Fatalf("tokend exit after SIGTERM: %v\n%s", err, p.logs)
	}
	close(stop)
	wg.Wait()
	if len(a.secrets) == 0 {
		t.Fatal("no load before SIGTERM")
	}
	// Calls after the listener closed fail to connect (unavailable); none
	// may fail any other way, in particular none cut off mid-call.
	for code, n := range a.failures {
		if code != connect.CodeUnavailable {
			t.Errorf("%d calls failed with %v around SIGTERM", n, code)
		}
	}
	if len(a.cut) > 0 {
		t.Errorf("%d calls cut off, not refused; first: %s", len(a.cut), a.cut[0])
	}
	next := startTokend(t, config)
	checkAcked(t, next.URL, &a)
	t.Logf("acknowledged before exit: %d API tokens, %d sessions; refused after: %v", len(a.secrets), len(a.refresh), a.failures)
}

// TestTwoReplicasShareReuseDetection runs two tokend processes over one
// Redis: a refresh token rotated on one and presented again on the other is
// reuse, and revokes the family on both (no split brain).
func TestTwoReplicasShareReuseDetection(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	// Replicas share keys and one issuer (the name clients see, in front
	// of a load balancer).
	config := func(addr string) string {
		return configIssuer(t, "https://tokend.example", addr, redis.URL, key, "")
	}
	a, b := startTokend(t, config), startTokend(t, config)
	ctx := context.Background()
	onA := authv1connect.NewAuthServiceClient(http1(), a.URL, connect.WithProtoJSON())
	onB := authv1connect.NewAuthServiceClient(http1(), b.URL, connect.WithProtoJSON())

	login, err := onA.Token(ctx, passwordLogin("alice", alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := onA.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: login.Msg.RefreshToken}))
	if err != nil {
		t.Fatal(err)
	}
	// An access token minted on A passes B's bearer check (same keys).
	api := tokenservicev1alpha1connect.NewTokenServiceClient(http1(), b.URL,
		withBearer([]connect.ClientOption{connect.WithProtoJSON()}, rotated.Msg.AccessToken)...)
	if _, err := api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})); err != nil {
		t.Fatal("B refuses A's access token:", err)
	}

	_, err = onB.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: login.Msg.RefreshToken}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = onA.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: rotated.Msg.RefreshToken}))
	wantCode(t, err, connect.CodeUnauthenticated) // the whole family is gone, on A too
	_, err = api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated {
		t.Fatalf("the revoked session's access token still passes on B: %v", err)
	}
}
