package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore/redistest"
)

// clocks maps the clients of miniredis servers to a function that moves the
// server's clock forward; for real servers, advance sleeps.
var clocks sync.Map // redis.UniversalClient → func(time.Duration)

func advance(c redis.UniversalClient, d time.Duration) {
	if f, ok := clocks.Load(c); ok {
		f.(func(time.Duration))(d)
		return
	}
	time.Sleep(d)
}

func newMiniredisClient(t *testing.T) redis.UniversalClient {
	m := miniredis.RunT(t)
	var mu sync.Mutex
	now := time.Now()
	m.SetTime(now)
	m.ClockTTL(true) // TTLs follow SetTime, coherently with TIME
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	clocks.Store(redis.UniversalClient(c), func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		m.SetTime(now)
	})
	return c
}

func newRedisClient(t *testing.T) redis.UniversalClient {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformanceMiniredis(t *testing.T) { RunTests(t, newMiniredisClient) }

// TestConformanceCluster runs the suite on one Redis Cluster of three
// masters (subtests are kept apart by key prefix): Cluster refuses scripts
// whose keys span slots, and routes pipelines across nodes.
func TestConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	RunTests(t, func(t *testing.T) redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
		t.Cleanup(func() { c.Close() })
		return c
	})
}

func TestConformanceRedis(t *testing.T) {
	redistest.Binary(t)
	RunTests(t, newRedisClient)
}

const hour = time.Hour

// prefixes keeps the subtests' keys apart where they share a server.
var prefixes atomic.Int64

// newStoreFunc returns an empty store for one test, and its client.
type newStoreFunc func(t *testing.T) (*Store, redis.UniversalClient)

// conformance is the suite, by kind of record: each test is a behaviour
// tokend relies on, run against every kind of Redis by RunTests.
var conformance = []struct {
	kind  string
	tests []namedTest
}{
	{"Refresh", []namedTest{
		{"CreateRotate", testCreateRotate},
		{"ReuseWithinGrace", testReuseWithinGrace},
		{"ReplayAfterSuccessorUsed", testReplayAfterSuccessorUsed},
		{"GraceReplaysCapped", testGraceReplaysCapped},
		{"SessionMaxLifetime", testSessionMaxLifetime},
		{"ReuseAfterGrace", testReuseAfterGrace},
		{"Revoke", testRevoke},
		{"FamilyActive", testFamilyActive},
		{"NotFound", testNotFound},
		{"OnlyHashesStored", testOnlyHashesStored},
		{"TTLOnEveryKey", testTTLOnEveryKey},
		{"RefreshExpiry", testRefreshExpiry},
		{"ConcurrentRotation", testConcurrentRotation},
	}},
	{"Code", codeTests}, // codes_test.go
	{"Principals", []namedTest{
		{"SyncConfigured", testSyncConfigured},
	}},
	{"Assertion", []namedTest{
		{"AssertionOnce", testAssertionOnce},
	}},
	{"Limit", []namedTest{
		{"Limit", testLimit},
		{"LimitWindow", testLimitWindow},
	}},
	{"APIToken", []namedTest{
		{"APITokens", testAPITokens},
		{"APITokenExpiry", testAPITokenExpiry},
	}},
	{"M2M", []namedTest{
		{"M2MQuota", testM2MQuota},
		{"M2MCreateGetList", testM2MCreateGetList},
		{"M2MConcurrentCreate", testM2MConcurrentCreate},
		{"M2MBlacklistAndDelete", testM2MBlacklistAndDelete},
		{"M2MDeleteLostRecord", testM2MDeleteLostRecord},
		{"M2MSweep", testM2MSweep},
	}},
	{"Precheck", []namedTest{
		{"Prechecks", testPrechecks},
	}},
	{"Store", []namedTest{
		{"ScriptCacheFlushed", testScriptCacheFlushed},
		{"Prefix", testPrefix},
		{"Unavailable", testUnavailable},
		{"OpenURL", func(t *testing.T, _ newStoreFunc) { testOpenURL(t) }}, // store_test.go
	}},
}

// namedTest is one behaviour of the suite.
type namedTest struct {
	name string
	run  func(t *testing.T, newStore newStoreFunc)
}

// RunTests runs the suite against one kind of Redis. newClient returns a
// client for one test; tests may share a server, each store has its own
// key prefix. Test names are flat (TestConformanceRedis/M2MQuota), so
// that -run patterns name a behaviour whatever its kind.
func RunTests(t *testing.T, newClient func(t *testing.T) redis.UniversalClient) {
	newStore := func(t *testing.T) (*Store, redis.UniversalClient) {
		c := newClient(t)
		return New(c, Options{Prefix: fmt.Sprintf("tokend%d", prefixes.Add(1))}), c
	}
	for _, kind := range conformance {
		for _, test := range kind.tests {
			t.Run(test.name, func(t *testing.T) { test.run(t, newStore) })
		}
	}
	runDPoPConformance(t, newStore)
}

// sess is the session the refresh tests start.
var sess = Session{UserID: "42", ClientID: "1001", Scope: "profile read", AuthTime: 1_700_000_000}

// m2m is an M2M token record of owner with id, expiring after ttl (0: never).
func m2m(owner, id string, ttl time.Duration) M2MToken {
	now := time.Now().Truncate(time.Second)
	t := M2MToken{ID: id, Name: "n-" + id, Owner: owner, ClientID: "svc", Subject: "svc",
		Audience: []string{"api"}, Scope: []string{"read"}, IssuedAt: now, Claims: []byte(`{"sub":"7"}`)}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	return t
}

func testCreateRotate(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	rt, err := s.CreateRefresh(ctx, sess, hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Token) < 60 || rt.FamilyID == "" || !strings.HasPrefix(rt.Token, rt.FamilyID+".") {
		t.Fatalf("issued %+v", rt)
	}
	if d := time.Until(rt.ExpiresAt); d < hour-time.Minute || d > hour {
		t.Errorf("ExpiresAt in %v, want about 1h", d)
	}
	next, got, err := s.RotateRefresh(ctx, rt.Token, rot(2*hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	if next.Token == rt.Token || next.FamilyID != rt.FamilyID {
		t.Errorf("successor %+v of %+v: want a new token in the same family", next, rt)
	}
	if !sameSession(got, sess) {
		t.Errorf("session = %+v, want %+v", got, sess)
	}
	state, err := c.HGet(ctx, s.keys.refresh(rt.FamilyID, hashToken(rt.Token)), "state").Result()
	if err != nil || state != "used" {
		t.Errorf("old token state = %q, %v; want used", state, err)
	}
	if pttl := c.PTTL(ctx, s.keys.family(rt.FamilyID)).Val(); pttl <= hour {
		t.Errorf("family TTL %v, want extended to the newest token's 2h", pttl)
	}
	// The successor rotates in turn.
	if _, _, err := s.RotateRefresh(ctx, next.Token, rot(hour, 0)); err != nil {
		t.Errorf("rotate successor: %v", err)
	}
}

func testReuseWithinGrace(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	a, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour))
	if err != nil {
		t.Fatal(err)
	}
	b, got, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour))
	if err != nil {
		t.Fatalf("second rotation within grace: %v", err)
	}
	if b.Token == a.Token || !sameSession(got, sess) {
		t.Errorf("second successor %q (first %q), session %+v", b.Token, a.Token, got)
	}
	if ok, err := s.FamilyActive(ctx, rt.FamilyID); !ok || err != nil {
		t.Errorf("FamilyActive = %v, %v; want true", ok, err)
	}
	// The family never forks: once one successor is used, its sibling is
	// dead, and presenting it is reuse.
	a2, _, err := s.RotateRefresh(ctx, a.Token, rot(hour, hour))
	if err != nil {
		t.Fatalf("rotate the first successor: %v", err)
	}
	if _, _, err := s.RotateRefresh(ctx, b.Token, rot(hour, hour)); !errors.Is(err, ErrReused) {
		t.Errorf("rotate the dead sibling: %v, want ErrReused", err)
	}
	if _, _, err := s.RotateRefresh(ctx, a2.Token, rot(hour, hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("the surviving branch after the sibling's reuse: %v, want ErrRevoked", err)
	}
}

func testReplayAfterSuccessorUsed(t *testing.T, newStore newStoreFunc) {
	// Inside the grace window, a consumed token whose successor has been
	// used gets nothing: that would start a second branch.
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	a, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RotateRefresh(ctx, a.Token, rot(hour, hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour)); !errors.Is(err, ErrReused) {
		t.Errorf("replay of a token whose successor was used: %v, want ErrReused", err)
	}
}

func testGraceReplaysCapped(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	r := Rotation{TTL: hour, Grace: hour, MaxReplays: 2}
	for i := range 3 { // the first use and two replays
		if _, _, err := s.RotateRefresh(ctx, rt.Token, r); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, r); !errors.Is(err, ErrReused) {
		t.Errorf("third replay: %v, want ErrReused", err)
	}
}

func testSessionMaxLifetime(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	r := Rotation{TTL: hour, MaxLifetime: 3 * time.Second}
	next, got, err := s.RotateRefresh(ctx, rt.Token, r)
	if err != nil {
		t.Fatal(err)
	}
	if end := got.End(r.MaxLifetime); end.IsZero() || next.ExpiresAt.After(end) {
		t.Errorf("successor expires %v, after the session's end %v", next.ExpiresAt, end)
	}
	if ttl := c.PTTL(ctx, s.keys.family(rt.FamilyID)).Val(); ttl > 3*time.Second {
		t.Errorf("family TTL %v: rotation extended it past the session's end", ttl)
	}
	advance(c, 3100*time.Millisecond)
	if _, _, err := s.RotateRefresh(ctx, next.Token, r); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotation past the session's end: %v, want ErrNotFound", err)
	}
}

func testSyncConfigured(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	sync := func(ids ...string) map[string]time.Time {
		t.Helper()
		back, err := s.SyncConfigured(ctx, ConfiguredUsers, ids)
		if err != nil {
			t.Fatal(err)
		}
		return back
	}
	if back := sync("1", "2"); len(back) != 0 {
		t.Errorf("first start: %v, want no id that came back", back)
	}
	if back := sync("1", "2"); len(back) != 0 { // a second replica, same configuration
		t.Errorf("same configuration again: %v", back)
	}
	removed := time.Now().Truncate(time.Second)
	sync("1") // 2 removed
	advance(c, 1100*time.Millisecond)
	back := sync("1", "2") // 2 back
	if len(back) != 1 || back["2"].Before(removed.Add(-2*time.Second)) || back["2"].After(removed.Add(2*time.Second)) {
		t.Fatalf("2 configured again: %v, want 2 with the time it was removed (about %v)", back, removed)
	}
	if again := sync("1", "2"); !again["2"].Equal(back["2"]) { // a replica starting later sees the same
		t.Errorf("a later start: %v, want %v", again, back)
	}
	// Clients are recorded apart from users.
	if cb, err := s.SyncConfigured(ctx, ConfiguredClients, []string{"2"}); err != nil || len(cb) != 0 {
		t.Errorf("clients: %v, %v", cb, err)
	}
	if _, err := s.SyncConfigured(ctx, "groups", nil); err == nil {
		t.Error("an unknown kind was accepted")
	}
}

func testAssertionOnce(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	until := time.Now().Add(2 * time.Second)
	const n = 8
	fresh := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if fresh[i], err = s.UseAssertionID(ctx, "https://idp.example", "a1", until); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if k := len(slices.DeleteFunc(fresh, func(f bool) bool { return !f })); k != 1 {
		t.Errorf("%d of %d concurrent uses of one assertion were fresh, want 1", k, n)
	}
	if ok, err := s.UseAssertionID(ctx, "https://other.example", "a1", until); !ok || err != nil {
		t.Errorf("another issuer's jti a1: %v, %v; want fresh", ok, err)
	}
	if ttl := c.PTTL(ctx, s.keys.assertionID("https://idp.example", "a1")).Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("assertion id TTL %v, want the assertion's remaining lifetime", ttl)
	}
	if ok, _ := s.UseAssertionID(ctx, "https://idp.example", "old", time.Now().Add(-time.Second)); ok {
		t.Error("an expired assertion was fresh")
	}
}

func testReuseAfterGrace(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	next, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
	if !errors.Is(err, ErrReused) {
		t.Fatalf("reuse: err = %v, want ErrReused", err)
	}
	if !sameSession(got, sess) {
		t.Errorf("session with ErrReused = %+v", got)
	}
	if _, _, err := s.RotateRefresh(ctx, next.Token, rot(hour, 0)); !errors.Is(err, ErrRevoked) {
		t.Errorf("successor after reuse: err = %v, want ErrRevoked", err)
	}
	if ok, err := s.FamilyActive(ctx, rt.FamilyID); ok || err != nil {
		t.Errorf("FamilyActive = %v, %v; want false", ok, err)
	}
}

func testRevoke(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	other := mustCreate(t, s, sess)
	for range 2 { // idempotent
		if err := s.RevokeRefresh(ctx, rt.Token); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("rotate revoked: err = %v, want ErrRevoked", err)
	}
	if err := s.RevokeFamily(ctx, other.FamilyID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RotateRefresh(ctx, other.Token, rot(hour, hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("rotate after RevokeFamily: err = %v, want ErrRevoked", err)
	}
	// Knowing a family id (it is the sid of every access token) is not
	// enough: a made-up token of a live family revokes nothing.
	live := mustCreate(t, s, sess)
	if err := s.RevokeRefresh(ctx, live.FamilyID+"."+strings.Repeat("A", 43)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FamilyActive(ctx, live.FamilyID); !ok || err != nil {
		t.Errorf("a forged token of a live family revoked it: FamilyActive = %v, %v", ok, err)
	}
	for _, tok := range []string{"", "garbage", "a.b", NewFamilyID() + "." + strings.Repeat("A", 43)} {
		if err := s.RevokeRefresh(ctx, tok); err != nil {
			t.Errorf("RevokeRefresh(%q) = %v, want nil", tok, err)
		}
	}
	for _, fam := range []string{"", "x{y}", NewFamilyID()} {
		if err := s.RevokeFamily(ctx, fam); err != nil {
			t.Errorf("RevokeFamily(%q) = %v, want nil", fam, err)
		}
	}
}

func testFamilyActive(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	for fam, want := range map[string]bool{rt.FamilyID: true, NewFamilyID(): false, "": false, "{x}": false} {
		if got, err := s.FamilyActive(ctx, fam); got != want || err != nil {
			t.Errorf("FamilyActive(%q) = %v, %v; want %v", fam, got, err, want)
		}
	}
}

func testNotFound(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	for _, tok := range []string{
		"", "garbage", rt.FamilyID, rt.Token + "x", rt.Token[:len(rt.Token)-1] + "!",
		rt.FamilyID + "." + strings.Repeat("A", 43), // right family, wrong secret
		NewFamilyID() + "." + strings.Repeat("A", 43),
	} {
		if _, _, err := s.RotateRefresh(ctx, tok, rot(hour, hour)); !errors.Is(err, ErrNotFound) {
			t.Errorf("RotateRefresh(%q): err = %v, want ErrNotFound", tok, err)
		}
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour)); err != nil {
		t.Errorf("failed attempts must not harm the real token: %v", err)
	}
}

func testOnlyHashesStored(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	var secrets []string
	rt := mustCreate(t, s, sess)
	secrets = append(secrets, rt.Token, strings.TrimPrefix(rt.Token, rt.FamilyID+"."))
	tok := rt.Token
	for range 3 {
		next, _, err := s.RotateRefresh(ctx, tok, rot(hour, hour))
		if err != nil {
			t.Fatal(err)
		}
		tok = next.Token
		secrets = append(secrets, tok, strings.TrimPrefix(tok, rt.FamilyID+"."))
	}
	if _, err := s.LimitTake(ctx, hour, LimitGroup{Tag: "10.9.8.7", Limits: []Limit{{"alice-secret-name", 3}}}); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, "alice-secret-name", "10.9.8.7")
	dump := dumpAll(t, c, s.keys.prefix)
	for _, sec := range secrets {
		if strings.Contains(dump, sec) {
			t.Errorf("%q is stored in plain text:\n%s", sec, dump)
		}
	}
}

func testTTLOnEveryKey(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	next, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0)); !errors.Is(err, ErrReused) {
		t.Fatal(err)
	}
	_ = next
	other := mustCreate(t, s, sess)
	if err := s.RevokeRefresh(ctx, other.Token); err != nil {
		t.Fatal(err)
	}
	// Operations on what does not exist must not create keys without TTL.
	_ = s.RevokeFamily(ctx, NewFamilyID())
	_, _ = s.FamilyActive(ctx, NewFamilyID())
	_, _, _ = s.RotateRefresh(ctx, NewFamilyID()+"."+strings.Repeat("A", 43), rot(hour, 0))
	if _, err := s.LimitTake(ctx, hour, LimitGroup{Tag: "1.2.3.4", Limits: []Limit{{"bob", 3}, {"addr", 3}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.LimitForgive(ctx, LimitGroup{Tag: "5.6.7.8", Limits: []Limit{{"nobody", 3}}},
		LimitGroup{Tag: "1.2.3.4", Limits: []Limit{{"addr", 3}}}); err != nil {
		t.Fatal(err)
	}
	keys := allKeys(t, c, s.keys.prefix)
	if len(keys) < 6 {
		t.Fatalf("only %d keys: %q", len(keys), keys)
	}
	for _, k := range keys {
		if d := c.PTTL(ctx, k).Val(); d <= 0 {
			t.Errorf("key %s has PTTL %v, want a TTL", k, d)
		}
	}
}

func testRefreshExpiry(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	rt, err := s.CreateRefresh(ctx, sess, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	advance(c, 1100*time.Millisecond)
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired token: err = %v, want ErrNotFound", err)
	}
	if ok, err := s.FamilyActive(ctx, rt.FamilyID); ok || err != nil {
		t.Errorf("FamilyActive of expired family = %v, %v", ok, err)
	}
	if keys := allKeys(t, c, s.keys.prefix); len(keys) != 0 {
		t.Errorf("keys left after expiry: %q", keys)
	}
}

func testConcurrentRotation(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
		})
	}
	close(start)
	wg.Wait()
	var ok, reused, revoked int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrReused):
			reused++
		case errors.Is(err, ErrRevoked):
			revoked++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reused+revoked != n-1 {
		t.Errorf("%d rotations: %d succeeded, %d ErrReused, %d ErrRevoked; want exactly 1 success", n, ok, reused, revoked)
	}
}

func testLimit(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	// Login's groups: (user, address) and address counters under the
	// address, the username's ceiling under the username.
	atAddr := func(addr, user string) LimitGroup {
		return LimitGroup{Tag: "a:" + addr, Limits: []Limit{{"user:" + user, 3}, {"addr", 5}}}
	}
	ceiling := func(user string) LimitGroup { return LimitGroup{Tag: "u:" + user, Limits: []Limit{{"user", 8}}} }
	take := func(want []bool, groups ...LimitGroup) []time.Duration {
		t.Helper()
		waits, err := s.LimitTake(ctx, hour, groups...)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range waits {
			if (w == 0) != want[i] {
				t.Fatalf("LimitTake(%v): waits %v, want allowed %v", groups, waits, want)
			}
		}
		return waits
	}
	for range 3 {
		take([]bool{true, true}, atAddr("10.0.0.1", "alice"), ceiling("alice"))
	}
	waits := take([]bool{false}, atAddr("10.0.0.1", "alice"))
	if waits[0] < hour-time.Minute || waits[0] > hour {
		t.Errorf("wait %v, want the rest of the 1h window", waits[0])
	}
	// Refused attempts count nowhere: from its blocked address, nobody
	// can use up alice's ceiling (3 of 8 used so far).
	for range 20 {
		take([]bool{false}, atAddr("10.0.0.1", "alice"))
	}
	for i := range 5 { // from five other addresses: 3+5 = 8, the ceiling
		take([]bool{true, true}, atAddr(fmt.Sprintf("10.0.1.%d", i), "alice"), ceiling("alice"))
	}
	take([]bool{true, false}, atAddr("10.0.2.1", "alice"), ceiling("alice")) // the ceiling holds
	take([]bool{true, true}, atAddr("10.0.0.1", "bob"), ceiling("bob"))      // other names: their own counters
	take([]bool{true}, atAddr("10.0.0.1", "carol"))                          // address: 5 of 5 now
	take([]bool{false}, atAddr("10.0.0.1", "dave"))                          // full, whatever the name

	// Forgive takes back one attempt per counter, never below zero.
	if err := s.LimitForgive(ctx, atAddr("10.0.0.1", "alice")); err != nil {
		t.Fatal(err)
	}
	take([]bool{true}, atAddr("10.0.0.1", "alice"))
	for range 10 {
		if err := s.LimitForgive(ctx, atAddr("10.0.9.9", "erin")); err != nil {
			t.Fatal(err)
		}
	}
	take([]bool{true}, atAddr("10.0.9.9", "erin"))
	if keys := allKeys(t, c, s.keys.prefix+":limit"); len(keys) == 0 {
		t.Fatal("no counters stored")
	}
	if waits, err := s.LimitTake(ctx, hour); err != nil || len(waits) != 0 {
		t.Errorf("LimitTake(no groups) = %v, %v", waits, err)
	}
}

func testLimitWindow(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	g := LimitGroup{Tag: "a:10.0.0.2", Limits: []Limit{{"user:carol", 3}, {"addr", 3}}}
	for i := range 4 {
		waits, err := s.LimitTake(ctx, time.Second, g)
		if err != nil || (waits[0] == 0) != (i < 3) {
			t.Fatalf("attempt %d: %v, %v", i+1, waits, err)
		}
	}
	advance(c, 1100*time.Millisecond)
	if waits, err := s.LimitTake(ctx, time.Second, g); err != nil || waits[0] != 0 {
		t.Errorf("after the window: %v, %v; want allowed", waits, err)
	}
}

func testScriptCacheFlushed(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	rt := mustCreate(t, s, sess)
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0)); err != nil {
		t.Errorf("rotate after SCRIPT FLUSH: %v", err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waits, err := s.LimitTake(ctx, hour, LimitGroup{Tag: "b", Limits: []Limit{{"a", 3}}}, LimitGroup{Tag: "c", Limits: []Limit{{"a", 3}}})
	if err != nil || waits[0] != 0 || waits[1] != 0 {
		t.Errorf("pipelined scripts after SCRIPT FLUSH: %v, %v", waits, err)
	}
}

func testPrefix(t *testing.T, newStore newStoreFunc) {
	_, plain := newStore(t)
	if p := New(plain, Options{}).keys.prefix; p != "tokend" {
		t.Errorf("default prefix %q", p)
	}
	s, c := newStore(t)
	rt := mustCreate(t, s, sess)
	if keys := allKeys(t, c, s.keys.prefix); len(keys) != 2 {
		t.Errorf("keys under %s: %q, want family and token", s.keys.prefix, keys)
	}
	if n := c.Exists(t.Context(), "tokend:rt:{"+rt.FamilyID+"}:family").Val(); n != 0 {
		t.Error("a store with a prefix wrote under the default one")
	}
}

func testAPITokens(t *testing.T, newStore newStoreFunc) {
	s, _ := newStore(t)
	ctx := t.Context()
	now := time.Unix(time.Now().Unix(), 0)
	rec := APIToken{ID: "api_token_01h455vb4pex5vsknk084sn02q", Owner: "42", Name: "ci", SecretHash: []byte{1, 2, 3}, CreatedAt: now}
	if err := s.CreateAPIToken(ctx, rec, 2); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAPIToken(ctx, rec.ID)
	if err != nil || got.Owner != "42" || got.Name != "ci" || string(got.SecretHash) != "\x01\x02\x03" || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetAPIToken = %+v, %v", got, err)
	}
	if ok, err := s.APITokenActive(ctx, rec.ID); !ok || err != nil {
		t.Errorf("APITokenActive = %v, %v", ok, err)
	}
	rec2 := rec
	rec2.ID, rec2.ExpiresAt = "api_token_01h455vb4pex5vsknk084sn02r", now.Add(hour)
	if err := s.CreateAPIToken(ctx, rec2, 2); err != nil {
		t.Fatal(err)
	}
	rec3 := rec
	rec3.ID = "api_token_01h455vb4pex5vsknk084sn02s"
	if err := s.CreateAPIToken(ctx, rec3, 2); !errors.Is(err, ErrLimit) {
		t.Errorf("third token with max 2: err = %v, want ErrLimit", err)
	}
	if err := s.TouchAPITokens(ctx, map[string]time.Time{rec.ID: now.Add(time.Minute), "api_token_gone": now}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAPIToken(ctx, rec.ID); !got.LastUsedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("LastUsedAt = %v", got.LastUsedAt)
	}
	if _, err := s.GetAPIToken(ctx, "api_token_gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("touch must not create records: %v", err)
	}
	list, err := s.ListAPITokens(ctx, "42")
	if err != nil || len(list) != 2 {
		t.Errorf("ListAPITokens = %d records, %v", len(list), err)
	}
	if err := s.DeleteAPIToken(ctx, "43", rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete by another owner: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAPIToken(ctx, "42", rec.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.APITokenActive(ctx, rec.ID); ok {
		t.Error("deleted token still active")
	}
	if err := s.CreateAPIToken(ctx, rec3, 2); err != nil {
		t.Errorf("create after a delete freed a place: %v", err)
	}
	for _, id := range []string{"", "{x}", "a b"} {
		if _, err := s.GetAPIToken(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetAPIToken(%q) = %v", id, err)
		}
	}
}

func testAPITokenExpiry(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	// EXPIREAT has one-second resolution; two seconds ahead leaves a busy
	// machine a whole second before the expiry could already have passed.
	next := time.Unix(time.Now().Unix()+2, 0)
	rec := APIToken{ID: "api_token_e", Owner: "7", SecretHash: []byte{1}, CreatedAt: time.Now(), ExpiresAt: next}
	if err := s.CreateAPIToken(ctx, rec, 1); err != nil {
		t.Fatal(err)
	}
	if d := c.PTTL(ctx, s.keys.apiToken(rec.ID)).Val(); d <= 0 || d > 2*time.Second {
		t.Errorf("record PTTL %v, want until its expiry", d)
	}
	advance(c, 2100*time.Millisecond)
	if _, err := s.GetAPIToken(ctx, rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired API token: %v, want ErrNotFound", err)
	}
	// The expired token no longer counts against the limit of 1.
	rec.ID, rec.ExpiresAt = "api_token_f", time.Time{}
	if err := s.CreateAPIToken(ctx, rec, 1); err != nil {
		t.Errorf("create after expiry: %v", err)
	}
}

func testM2MQuota(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	_, c := newStore(t)
	s := New(c, Options{Prefix: fmt.Sprintf("tokend%d", prefixes.Add(1)), MaxM2MPerOwner: 3})
	ctx := t.Context()
	for i := range 3 {
		if err := s.CreateM2MToken(ctx, m2m("alice", fmt.Sprint("a", i), hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateM2MToken(ctx, m2m("alice", "a3", hour)); !errors.Is(err, ErrLimit) {
		t.Fatalf("4th token: %v, want ErrLimit", err)
	}
	if got, _ := s.GetM2MTokens(ctx, nil, "alice", []string{"a3"}); len(got) != 0 || c.ZCard(ctx, s.keys.m2mIndex("alice")).Val() != 3 {
		t.Fatal("a refused token was written")
	}
	if err := s.CreateM2MToken(ctx, m2m("bob", "b0", hour)); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	// Revoked tokens count until they expire (they are kept till then).
	if _, _, err := s.DeleteM2MTokens(ctx, "alice", []string{"a0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateM2MToken(ctx, m2m("alice", "a4", hour)); !errors.Is(err, ErrLimit) {
		t.Fatalf("after a revocation: %v, want ErrLimit", err)
	}
	// Concurrent creations cannot overshoot.
	var wg sync.WaitGroup
	var created atomic.Int64
	for i := range 20 {
		wg.Go(func() {
			if s.CreateM2MToken(ctx, m2m("carol", fmt.Sprint("c", i), hour)) == nil {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if n := created.Load(); n != 3 {
		t.Errorf("%d of 20 concurrent creations succeeded, want 3", n)
	}
	// Expired tokens stop counting at once, before any sweep.
	for i := range 3 {
		if err := s.CreateM2MToken(ctx, m2m("dave", fmt.Sprint("d", i), time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// Two seconds: the records' expiry is whole seconds from the wall
	// clock, which may have moved on since the store's clock was set.
	advance(c, 2100*time.Millisecond)
	if err := s.CreateM2MToken(ctx, m2m("dave", "d3", hour)); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
}

func testM2MCreateGetList(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	want := m2m("alice", "tok1", hour)
	if err := s.CreateM2MToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetM2MTokens(ctx, nil, "alice", []string{"tok1", "nope", "bad id{x}"})
	if err != nil || len(got) != 1 {
		t.Fatalf("GetM2MTokens = %v, %v", got, err)
	}
	g := got[0]
	if g.ID != "tok1" || g.Name != want.Name || g.Owner != "alice" || g.ClientID != "svc" || g.Subject != "svc" ||
		!slices.Equal(g.Audience, want.Audience) || !slices.Equal(g.Scope, want.Scope) ||
		!g.IssuedAt.Equal(want.IssuedAt) || !g.ExpiresAt.Equal(want.ExpiresAt) ||
		string(g.Claims) != `{"sub":"7"}` || g.Version != 1 || g.Blacklisted() {
		t.Errorf("read back %+v, want %+v", g, want)
	}
	if d := c.PTTL(ctx, s.keys.m2mToken("alice", "tok1")).Val(); d <= hour-time.Minute || d > hour {
		t.Errorf("record PTTL %v, want the token's 1h", d)
	}
	// Another owner sees nothing of alice's.
	if got, err := s.GetM2MTokens(ctx, nil, "bob", []string{"tok1"}); err != nil || len(got) != 0 {
		t.Errorf("bob reads alice's token: %v, %v", got, err)
	}
	// 1,234 tokens list in batches of at most 500, each once.
	for i := range 1233 {
		if err := s.CreateM2MToken(ctx, m2m("alice", fmt.Sprintf("t%04d", i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	batches := 0
	err = s.ListM2MTokens(ctx, nil, "alice", func(b []M2MToken) error {
		batches++
		if len(b) > m2mBatch {
			t.Errorf("batch of %d", len(b))
		}
		for _, tok := range b {
			seen[tok.ID]++
		}
		return nil
	})
	if err != nil || len(seen) != 1234 || batches < 3 {
		t.Errorf("listed %d tokens in %d batches, err %v; want 1234 in ≥ 3", len(seen), batches, err)
	}
	if err := s.ListM2MTokens(ctx, nil, "bob", func(b []M2MToken) error {
		t.Errorf("bob lists %d tokens", len(b))
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func testM2MConcurrentCreate(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	// Concurrent creates share pipelines (batcher); each must land whole.
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 25 {
				if err := s.CreateM2MToken(ctx, m2m(fmt.Sprint("o", g%4), fmt.Sprintf("c%02d_%02d", g, i), hour)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := int64(0)
	for o := range 4 {
		total += c.ZCard(ctx, s.keys.m2mIndex(fmt.Sprint("o", o))).Val()
	}
	if total != 800 || c.ZCard(ctx, s.keys.m2mDue()).Val() != 4 {
		t.Errorf("%d indexed, %d owners; want 800, 4", total, c.ZCard(ctx, s.keys.m2mDue()).Val())
	}
	got, err := s.GetM2MTokens(ctx, nil, "o1", []string{"c01_24", "c05_00"})
	if err != nil || len(got) != 2 {
		t.Errorf("records: %v, %v", got, err)
	}
	// After Close, calls fail (unavailable) instead of hanging.
	s.Close()
	if err := s.CreateM2MToken(ctx, m2m("o1", "late", hour)); !IsUnavailable(err) {
		t.Errorf("create after Close: %v, want unavailable", err)
	}
}

func testM2MBlacklistAndDelete(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	for _, tok := range []M2MToken{m2m("alice", "live1", hour), m2m("alice", "live2", 0), m2m("alice", "short", 2*time.Second), m2m("bob", "bobs", hour)} {
		if err := s.CreateM2MToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// Alice cannot blacklist bob's token by naming it.
	if b, d, err := s.DeleteM2MTokens(ctx, "alice", []string{"bobs"}); err != nil || b != 0 || d != 0 {
		t.Errorf("alice deletes bob's: %d, %d, %v", b, d, err)
	}
	if bl, err := s.M2MBlacklisted(ctx, "bob", "bobs"); err != nil || bl {
		t.Errorf("bob's token blacklisted: %v, %v", bl, err)
	}
	b, d, err := s.DeleteM2MTokens(ctx, "alice", []string{"live1"})
	if err != nil || b != 1 || d != 0 {
		t.Fatalf("blacklist live1: %d, %d, %v; want 1, 0", b, d, err)
	}
	if bl, err := s.M2MBlacklisted(ctx, "alice", "live1"); err != nil || !bl {
		t.Errorf("live1 not blacklisted: %v, %v", bl, err)
	}
	got, _ := s.GetM2MTokens(ctx, nil, "alice", []string{"live1"})
	if len(got) != 1 || !got[0].Blacklisted() || got[0].Version != 2 {
		t.Errorf("live1 after blacklisting: %+v", got)
	}
	advance(c, 2100*time.Millisecond) // "short" expires
	// Delete all: live2 blacklisted, live1 already was (not counted again),
	// short expired and deleted.
	b, d, err = s.DeleteM2MTokens(ctx, "alice", nil)
	if err != nil || b != 1 || d != 1 {
		t.Fatalf("delete all: %d, %d, %v; want 1, 1", b, d, err)
	}
	got, _ = s.GetM2MTokens(ctx, nil, "alice", []string{"live1"})
	if len(got) != 1 || !got[0].Blacklisted() || got[0].Version != 2 {
		t.Errorf("blacklisting is once: live1 %+v", got)
	}
	if n := c.ZCard(ctx, s.keys.m2mIndex("alice")).Val(); n != 2 {
		t.Errorf("alice's index holds %d, want 2", n)
	}
}

// testM2MDeleteLostRecord: A record lost with a failover (its index entry kept) must stay
// revocable: DeleteTokens by id, or for all, blacklists the id.
func testM2MDeleteLostRecord(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	for _, tok := range []M2MToken{m2m("alice", "lost1", hour), m2m("alice", "lost2", 0), m2m("alice", "lost3", hour)} {
		if err := s.CreateM2MToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, s.keys.m2mToken("alice", tok.ID)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b, d, err := s.DeleteM2MTokens(ctx, "alice", []string{"lost1", "lost2"})
	if err != nil || b != 2 || d != 0 {
		t.Fatalf("delete lost records by id: %d, %d, %v; want 2, 0", b, d, err)
	}
	if b, d, err = s.DeleteM2MTokens(ctx, "alice", []string{"lost1"}); err != nil || b != 0 || d != 0 {
		t.Errorf("again: %d, %d, %v; want 0, 0 (blacklisted once)", b, d, err)
	}
	if b, d, err = s.DeleteM2MTokens(ctx, "alice", nil); err != nil || b != 1 || d != 0 {
		t.Errorf("delete all: %d, %d, %v; want lost3 blacklisted", b, d, err)
	}
	for _, id := range []string{"lost1", "lost2", "lost3"} {
		if bl, err := s.M2MBlacklisted(ctx, "alice", id); err != nil || !bl {
			t.Errorf("%s with its record lost: blacklisted %v, %v", id, bl, err)
		}
	}
}

func testPrechecks(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	sent := &commandCounter{}
	c.AddHook(sent)
	for _, id := range []string{"live1", "live2", "gone1", "lost1"} {
		if err := s.CreateM2MToken(ctx, m2m("alice", id, hour)); err != nil {
			t.Fatal(err)
		}
	}
	c.Del(ctx, s.keys.m2mToken("alice", "lost1")) // as if Redis had lost it
	if _, _, err := s.DeleteM2MTokens(ctx, "alice", []string{"gone1"}); err != nil {
		t.Fatal(err)
	}

	// A passing check rides along with the read: one round trip for both,
	// and settling it afterwards sends nothing.
	pass := s.M2MCheck("alice", "live1")
	before := sent.n.Load()
	got, err := s.GetM2MTokens(ctx, Gate{pass}, "alice", []string{"live1", "live2"})
	if err != nil || len(got) != 2 {
		t.Fatalf("read with a passing precheck: %v, %v", got, err)
	}
	if n := sent.n.Load() - before; n != 3 {
		t.Errorf("read with its precheck sent %d commands, want 3 (HGET + 2 HGETALL)", n)
	}
	if refused, err := Settle(ctx, pass); refused || err != nil {
		t.Errorf("Settle after the read = %v, %v; want a pass", refused, err)
	}
	if n := sent.n.Load() - before; n != 3 {
		t.Errorf("Settle of a carried check sent %d more commands", n-3)
	}

	// A refusing check: the read's results are dropped.
	got, err = s.GetM2MTokens(ctx, Gate{s.M2MCheck("alice", "gone1")}, "alice", []string{"live1"})
	if !errors.Is(err, ErrRefused) || got != nil {
		t.Errorf("read with a refusing precheck: %v, %v; want ErrRefused", got, err)
	}
	// Sessions and API tokens: unknown or malformed ids are refused, a
	// malformed one without asking Redis.
	rt, err := s.CreateRefresh(ctx, sess, hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		p    *Precheck
		want bool
	}{
		"live session":      {s.SessionCheck(rt.FamilyID), false},
		"unknown session":   {s.SessionCheck(NewFamilyID()), true},
		"unknown API token": {s.APITokenCheck("Yp3nQm0yJ4aSgG7bq0nW1w"), true},
		"blacklisted M2M":   {s.M2MCheck("alice", "gone1"), true},
		"live M2M":          {s.M2MCheck("alice", "live2"), false},
		// An M2M token whose record is missing — another owner's, or
		// state Redis lost — is refused: the check fails closed.
		"another's M2M": {s.M2MCheck("bob", "live1"), true},
		"lost M2M":      {s.M2MCheck("alice", "lost1"), true},
	} {
		if refused, err := Settle(ctx, tc.p); refused != tc.want || err != nil {
			t.Errorf("%s: Settle = %v, %v; want %v", name, refused, err, tc.want)
		}
	}
	before = sent.n.Load()
	if refused, err := Settle(ctx, s.SessionCheck("not-a-family"), s.APITokenCheck("no/such id"), s.M2MCheck("alice", "bad id")); !refused || err != nil {
		t.Errorf("malformed ids: Settle = %v, %v; want refused", refused, err)
	}
	if n := sent.n.Load() - before; n != 0 {
		t.Errorf("malformed ids sent %d commands", n)
	}
	// Several checks settle together: refused when any one refuses.
	if refused, _ := Settle(ctx, s.SessionCheck(rt.FamilyID), s.M2MCheck("alice", "gone1")); !refused {
		t.Error("a refusing check among passing ones passed")
	}
}

func testM2MSweep(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	// One expiry for all (creating 1,100 takes a while on a busy
	// machine, and miniredis' clock stands still meanwhile).
	exp := time.Now().Truncate(time.Second).Add(3 * time.Second)
	for i := range 1100 {
		tok := m2m(fmt.Sprint("owner", i%3), fmt.Sprintf("s%04d", i), time.Hour)
		tok.ExpiresAt = exp
		if err := s.CreateM2MToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateM2MToken(ctx, m2m("owner0", "keeper", hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeleteM2MTokens(ctx, "owner1", nil); err != nil { // blacklist entries too
		t.Fatal(err)
	}
	if n, err := s.SweepM2M(ctx); err != nil || n != 0 {
		t.Errorf("sweep before expiry removed %d, %v", n, err)
	}
	advance(c, 4100*time.Millisecond) // past exp, on a real clock or miniredis' fake one
	n, err := s.SweepM2M(ctx)
	if err != nil || n != 1100 {
		t.Errorf("sweep removed %d, %v; want 1100", n, err)
	}
	// Storage is back to the one live token: its record and index entry,
	// one owner in the sweep's set, nothing else.
	keys := allKeys(t, c, s.keys.prefix)
	slices.Sort(keys)
	want := []string{s.keys.m2mDue(), s.keys.m2mIndex("owner0"), s.keys.m2mToken("owner0", "keeper")}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys after the sweep: %v, want %v", keys, want)
	}
	if m := c.ZRange(ctx, s.keys.m2mDue(), 0, -1).Val(); len(m) != 1 {
		t.Errorf("owners left: %v", m)
	}
	// Sweeping again (as another replica would) changes nothing.
	if n, err := s.SweepM2M(ctx); err != nil || n != 0 {
		t.Errorf("second sweep removed %d, %v", n, err)
	}
}

func testUnavailable(t *testing.T, newStore newStoreFunc) {
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), DialTimeout: dialTimeout, ReadTimeout: ioTimeout,
		WriteTimeout: ioTimeout, PoolTimeout: poolTimeout, MaxRetries: maxRetries, DialerRetries: 1})
	defer c.Close()
	s := New(c, Options{})
	ctx := t.Context()
	tok := NewFamilyID() + "." + strings.Repeat("A", 43)
	checks := map[string]func() error{
		"Ping":          func() error { return s.Ping(ctx) },
		"CreateRefresh": func() error { _, err := s.CreateRefresh(ctx, sess, hour); return err },
		"RotateRefresh": func() error { _, _, err := s.RotateRefresh(ctx, tok, rot(hour, 0)); return err },
		"RevokeRefresh": func() error { return s.RevokeRefresh(ctx, tok) },
		"FamilyActive":  func() error { _, err := s.FamilyActive(ctx, NewFamilyID()); return err },
		"M2MCheck":      func() error { _, err := Settle(ctx, s.M2MCheck("alice", "live1")); return err },
		"precheck carried by a read": func() error {
			_, err := s.GetM2MTokens(ctx, Gate{s.M2MCheck("alice", "live1")}, "alice", []string{"live1"})
			return err
		},
		"LimitTake": func() error {
			_, err := s.LimitTake(ctx, hour, LimitGroup{Tag: "b", Limits: []Limit{{"a", 3}}})
			return err
		},
		"LimitForgive": func() error { return s.LimitForgive(ctx, LimitGroup{Tag: "b", Limits: []Limit{{"a", 3}}}) },
	}
	for name, f := range checks {
		if err := f(); !errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
			t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
		}
	}
	// A deadline while talking to Redis is unavailability too.
	dctx, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	_, liveClient := newStore(t)
	live := New(liveClient, Options{})
	if err := live.Ping(dctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with expired context: %v, want ErrUnavailable", err)
	}
}

func mustCreate(t *testing.T, s *Store, sess Session) IssuedRefresh {
	t.Helper()
	rt, err := s.CreateRefresh(t.Context(), sess, hour)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// allKeys lists the keys under prefix, on every node.
func allKeys(t *testing.T, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(t.Context(), func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	} else {
		err = scan(t.Context(), c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// dumpAll renders every key and value.
func dumpAll(t *testing.T, c redis.UniversalClient, prefix string) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	for _, k := range allKeys(t, c, prefix) {
		b.WriteString(k + " =")
		switch typ := c.Type(ctx, k).Val(); typ {
		case "string":
			b.WriteString(" " + c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(" " + f + ":" + v)
			}
		case "zset":
			b.WriteString(" " + strings.Join(c.ZRange(ctx, k, 0, -1).Val(), " "))
		default:
			t.Errorf("key %s of unexpected type %s", k, typ)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// commandCounter is a go-redis hook counting the commands sent, piped or not.
type commandCounter struct{ n atomic.Int64 }

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
