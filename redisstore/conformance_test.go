package redisstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore/redistest"
)

// The conformance suite: every store behaviour, run against the embedded
// miniredis and a real redis-server (and, in CI, a Redis Cluster).

func TestConformanceMiniredis(t *testing.T) {
	runConformance(t, func(t *testing.T) *Store {
		s, err := Open(context.Background(), "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	runConformance(t, func(t *testing.T) *Store {
		s, err := Open(context.Background(), srv.URL, Options{Prefix: "t" + strings.ReplaceAll(t.Name(), "/", ":")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func runConformance(t *testing.T, newStore func(t *testing.T) *Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"RefreshRotate", testRefreshRotate},
		{"RefreshReuseInsideGrace", testRefreshReuseInsideGrace},
		{"RefreshReuseRevokesFamily", testRefreshReuseRevokesFamily},
		{"RefreshRevoke", testRefreshRevoke},
		{"RefreshMalformed", testRefreshMalformed},
		{"RefreshStoredAsHashWithTTL", testRefreshStoredAsHashWithTTL},
		{"RefreshExpires", testRefreshExpires},
		{"RefreshConcurrentRotation", testRefreshConcurrentRotation},
		{"Throttle", testThrottle},
		{"ThrottleWindow", testThrottleWindow},
		{"APITokens", testAPITokens},
		{"APITokenLimit", testAPITokenLimit},
		{"APITokenExpiry", testAPITokenExpiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
}

var sess = Session{UserID: "7", ClientID: "1001", Scope: "read profile", AuthTime: 1700000000}

func testRefreshRotate(t *testing.T, s *Store) {
	ctx := context.Background()
	first, err := s.CreateRefresh(ctx, sess, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	next, got, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token == first.Token || next.FamilyID != first.FamilyID || got != sess {
		t.Fatalf("rotate: %+v %+v", next, got)
	}
	if active, err := s.FamilyActive(ctx, first.FamilyID); err != nil || !active {
		t.Fatalf("family active = %v, %v", active, err)
	}
	if _, _, err := s.RotateRefresh(ctx, next.Token, time.Hour, 0); err != nil {
		t.Fatalf("rotating the successor: %v", err)
	}
}

func testRefreshReuseInsideGrace(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	a, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, time.Hour)
	if err != nil {
		t.Fatalf("second use inside the grace window: %v", err)
	}
	if a.Token == b.Token {
		t.Fatal("both successors are the same token")
	}
	for _, tok := range []string{a.Token, b.Token} {
		if _, _, err := s.RotateRefresh(ctx, tok, time.Hour, 0); err != nil {
			t.Fatalf("successor: %v", err)
		}
	}
}

func testRefreshReuseRevokesFamily(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	next, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0)
	if !errors.Is(err, ErrReused) || got.UserID != "7" {
		t.Fatalf("reuse: %v (%+v), want ErrReused", err, got)
	}
	if _, _, err := s.RotateRefresh(ctx, next.Token, time.Hour, 0); !errors.Is(err, ErrRevoked) {
		t.Fatalf("successor after reuse: %v, want ErrRevoked", err)
	}
	if active, _ := s.FamilyActive(ctx, first.FamilyID); active {
		t.Fatal("family still active after reuse")
	}
}

func testRefreshRevoke(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	for range 2 { // idempotent
		if err := s.RevokeRefresh(ctx, first.Token); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0); !errors.Is(err, ErrRevoked) {
		t.Fatalf("rotate after revoke: %v", err)
	}
	if active, err := s.FamilyActive(ctx, first.FamilyID); err != nil || active {
		t.Fatalf("FamilyActive after revoke = %v, %v", active, err)
	}
	if active, err := s.FamilyActive(ctx, NewFamilyID()); err != nil || active {
		t.Fatalf("FamilyActive(unknown) = %v, %v", active, err)
	}
	if err := s.RevokeRefresh(ctx, "garbage"); err != nil {
		t.Fatalf("revoking garbage: %v", err)
	}
}

func testRefreshMalformed(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	fam, secret, _ := strings.Cut(first.Token, ".")
	for _, tok := range []string{"", "x", fam, fam + ".", first.Token + "A", fam + "." + strings.Repeat("A", len(secret)),
		strings.Repeat("*", len(fam)) + "." + secret, NewFamilyID() + "." + secret} {
		if _, _, err := s.RotateRefresh(ctx, tok, time.Hour, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("RotateRefresh(%q) = %v, want ErrNotFound", tok, err)
		}
	}
}

// testRefreshStoredAsHashWithTTL scans every key: the token never appears,
// and nothing is kept without a TTL.
func testRefreshStoredAsHashWithTTL(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	next, _, _ := s.RotateRefresh(ctx, first.Token, time.Hour, 0)
	_, secret, _ := strings.Cut(next.Token, ".")
	keys := scanAll(t, s)
	if len(keys) < 3 {
		t.Fatalf("keys %v: expected a family and two tokens", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, secret) {
			t.Fatalf("token secret in key %q", k)
		}
		for f, v := range s.rdb.HGetAll(ctx, k).Val() {
			if strings.Contains(f+v, secret) {
				t.Fatalf("token secret in %q", k)
			}
		}
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Fatalf("key %q has no TTL (%v)", k, ttl)
		}
	}
}

func testRefreshExpires(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, 300*time.Millisecond)
	time.Sleep(600 * time.Millisecond)
	if _, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired token: %v, want ErrNotFound", err)
	}
	if n := len(scanAll(t, s)); n != 0 {
		t.Fatalf("%d keys left after expiry", n)
	}
}

// testRefreshConcurrentRotation: of 50 rotations of one token, exactly one
// wins; the others see reuse or a revoked family.
func testRefreshConcurrentRotation(t *testing.T, s *Store) {
	ctx := context.Background()
	first, _ := s.CreateRefresh(ctx, sess, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, losses := 0, 0
	for range 50 {
		wg.Go(func() {
			_, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrReused), errors.Is(err, ErrRevoked):
				losses++
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 49 {
		t.Fatalf("wins %d, losses %d; want 1 and 49", wins, losses)
	}
}

func testThrottle(t *testing.T, s *Store) {
	ctx := context.Background()
	keys := []string{"user:alice", "addr:10.0.0.1"}
	for i := range 3 {
		ok, err := s.ThrottleTake(ctx, keys, 3, time.Minute)
		if err != nil || !ok {
			t.Fatalf("attempt %d: %v %v", i+1, ok, err)
		}
	}
	if ok, _ := s.ThrottleTake(ctx, keys, 3, time.Minute); ok {
		t.Fatal("4th attempt allowed")
	}
	// Another user from another address is unaffected.
	if ok, _ := s.ThrottleTake(ctx, []string{"user:bob", "addr:10.0.0.2"}, 3, time.Minute); !ok {
		t.Fatal("unrelated keys throttled")
	}
	// Forgiving clears the user and takes one attempt off the address.
	if err := s.ThrottleForgive(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ThrottleTake(ctx, []string{"user:alice"}, 1, time.Minute); !ok {
		t.Fatal("user counter not cleared")
	}
	// Four attempts were counted (the refused one too); one is forgiven.
	if ok, _ := s.ThrottleTake(ctx, []string{"addr:10.0.0.1"}, 3, time.Minute); ok {
		t.Fatal("address counter cleared instead of decremented")
	}
	for _, k := range scanAll(t, s) {
		if strings.Contains(k, "alice") || strings.Contains(k, "10.0.0.1") {
			t.Fatalf("user input in key name %q", k)
		}
	}
}

func testThrottleWindow(t *testing.T, s *Store) {
	ctx := context.Background()
	keys := []string{"user:w"}
	s.ThrottleTake(ctx, keys, 1, 300*time.Millisecond)
	if ok, _ := s.ThrottleTake(ctx, keys, 1, 300*time.Millisecond); ok {
		t.Fatal("2nd attempt allowed inside the window")
	}
	time.Sleep(600 * time.Millisecond)
	if ok, err := s.ThrottleTake(ctx, keys, 1, 300*time.Millisecond); err != nil || !ok {
		t.Fatalf("after the window: %v %v", ok, err)
	}
}

func apiRec(id, owner string, expires time.Time) APIToken {
	sum := sha256.Sum256([]byte("secret-" + id))
	return APIToken{ID: id, Owner: owner, Name: "n-" + id, SecretHash: sum[:], CreatedAt: time.Now().Truncate(time.Second), ExpiresAt: expires}
}

func testAPITokens(t *testing.T, s *Store) {
	ctx := context.Background()
	a := apiRec("api_token_a", "7", time.Time{})
	b := apiRec("api_token_b", "8", time.Time{})
	for _, r := range []APIToken{a, b} {
		if err := s.CreateAPIToken(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetAPIToken(ctx, a.ID)
	if err != nil || got.Owner != "7" || string(got.SecretHash) != string(a.SecretHash) || !got.CreatedAt.Equal(a.CreatedAt) || !got.ExpiresAt.IsZero() {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetAPIToken(ctx, "api_token_zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	used := time.Now().Truncate(time.Second)
	if err := s.TouchAPITokens(ctx, map[string]time.Time{a.ID: used, "api_token_gone": used}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAPITokens(ctx, "7")
	if err != nil || len(list) != 1 || list[0].ID != a.ID || !list[0].LastUsedAt.Equal(used) {
		t.Fatalf("list: %+v %v", list, err)
	}
	if n := s.rdb.Exists(ctx, s.keys.apiToken("api_token_gone")).Val(); n != 0 {
		t.Fatal("touch recreated a missing token")
	}
	if err := s.DeleteAPIToken(ctx, "8", a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete by another owner: %v", err)
	}
	if ok, _ := s.APITokenActive(ctx, a.ID); !ok {
		t.Fatal("token gone after a foreign delete attempt")
	}
	if err := s.DeleteAPIToken(ctx, "7", a.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.APITokenActive(ctx, a.ID); err != nil || ok {
		t.Fatalf("active after delete: %v %v", ok, err)
	}
	if list, _ := s.ListAPITokens(ctx, "7"); len(list) != 0 {
		t.Fatalf("listed after delete: %+v", list)
	}
}

func testAPITokenLimit(t *testing.T, s *Store) {
	ctx := context.Background()
	for _, id := range []string{"api_token_1", "api_token_2"} {
		if err := s.CreateAPIToken(ctx, apiRec(id, "7", time.Time{}), 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAPIToken(ctx, apiRec("api_token_3", "7", time.Time{}), 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("third token: %v, want ErrLimit", err)
	}
	if err := s.DeleteAPIToken(ctx, "7", "api_token_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(ctx, apiRec("api_token_3", "7", time.Time{}), 2); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

func testAPITokenExpiry(t *testing.T, s *Store) {
	ctx := context.Background()
	r := apiRec("api_token_e", "7", time.Now().Add(1500*time.Millisecond))
	if err := s.CreateAPIToken(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, s.keys.apiToken(r.ID)).Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("record TTL %v", ttl)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := s.GetAPIToken(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired token: %v", err)
	}
	// The expired token no longer counts against the limit of 1.
	if err := s.CreateAPIToken(ctx, apiRec("api_token_f", "7", time.Time{}), 1); err != nil {
		t.Fatalf("create after expiry: %v", err)
	}
}

func scanAll(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	iter := s.rdb.Scan(context.Background(), 0, s.keys.prefix+":*", 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestUnavailable(t *testing.T) {
	m := miniredis.RunT(t)
	addr := m.Addr()
	m.Close() // nothing listens there now
	s, err := Open(context.Background(), "redis://"+addr+"/0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping: %v, want ErrUnavailable", err)
	}
	if _, err := s.CreateRefresh(ctx, sess, time.Hour); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateRefresh: %v", err)
	}
	if _, err := s.ThrottleTake(ctx, []string{"x"}, 1, time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ThrottleTake: %v", err)
	}
}

func TestRecoverAfterRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s, err := Open(context.Background(), srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	first, err := s.CreateRefresh(ctx, sess, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	if _, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("rotate while down: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing took %v; calls must fail fast", d)
	}
	srv.Restart()
	// The same Store recovers, and the token acknowledged before the crash
	// survived it (AOF).
	if _, _, err := s.RotateRefresh(ctx, first.Token, time.Hour, 0); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]string{
		"redis://127.0.0.1:1/0":                     "*redis.Client",
		"rediss://user:pw@127.0.0.1:1/0":            "*redis.Client",
		"unix:///tmp/none.sock":                     "*redis.Client",
		"redis+cluster://127.0.0.1:1,127.0.0.1:2":   "*redis.ClusterClient",
		"rediss+cluster://u:p@127.0.0.1:1/":         "*redis.ClusterClient",
		"redis+cluster://127.0.0.1:1,127.0.0.1:2/?": "*redis.ClusterClient",
	} {
		s, err := Open(ctx, url, Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", url, err)
			continue
		}
		if got := typeName(s.Client()); got != want {
			t.Errorf("Open(%q) made %s, want %s", url, got, want)
		}
		s.Close()
	}
	for _, url := range []string{"http://x", "redis+cluster://", "redis+cluster://a:1,,b:2", "nonsense", "redis://:pw@[bad"} {
		if s, err := Open(ctx, url, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("Open(%q) error leaks the password: %v", url, err)
		}
	}
	c, _ := Open(ctx, "redis+cluster://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", Options{})
	defer c.Close()
	if addrs := c.Client().(*redis.ClusterClient).Options().Addrs; len(addrs) != 3 {
		t.Fatalf("cluster addrs %v", addrs)
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "other"
}
