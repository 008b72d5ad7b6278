package redisstore

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore/redistest"
)

// What keeps M2M work bounded as an owner grows (the sweep's schedule,
// m2mDue; deletes in bounded batches) against miniredis, one real Redis and
// a three-master Cluster, like the conformance suite.

func TestM2MBoundedMiniredis(t *testing.T) { runM2MBounded(t, newMiniredisClient) }

func TestM2MBoundedRedis(t *testing.T) {
	redistest.Binary(t)
	runM2MBounded(t, newRedisClient)
}

func TestM2MBoundedCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	runM2MBounded(t, func(t *testing.T) redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
		t.Cleanup(func() { c.Close() })
		return c
	})
}

func runM2MBounded(t *testing.T, newClient func(t *testing.T) redis.UniversalClient) {
	newStore := func(t *testing.T) (*Store, redis.UniversalClient) {
		c := newClient(t)
		return New(c, Options{Prefix: fmt.Sprintf("tokend%d", prefixes.Add(1))}), c
	}
	base := time.Now().Truncate(time.Second)
	tok := func(owner, id string, exp time.Time) M2MToken {
		return M2MToken{ID: id, Name: "n", Owner: owner, ClientID: "svc", Subject: "svc",
			Audience: []string{"api"}, Scope: []string{"read"}, IssuedAt: base, ExpiresAt: exp}
	}
	score := func(t *testing.T, s *Store, c redis.UniversalClient, owner string) string {
		t.Helper()
		v, err := c.ZScore(t.Context(), s.keys.m2mDue(), digest(owner)).Result()
		if err == redis.Nil {
			return "none"
		}
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(int64(v), 10)
	}
	unix := func(tm time.Time) string { return strconv.FormatInt(tm.Unix(), 10) }

	t.Run("ScoreIsEarliestExpiry", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		// The early expiry is well after the subtest's start, so that the
		// sweep before it finds nothing due however slowly this machine
		// runs (-race, load); the store's clock is then moved past it.
		start := time.Now().Truncate(time.Second)
		late, early := start.Add(time.Hour), start.Add(12*time.Second)
		for i, exp := range []time.Time{late, early, late.Add(time.Minute)} {
			if err := s.CreateM2MToken(ctx, tok("alice", fmt.Sprint("a", i), exp)); err != nil {
				t.Fatal(err)
			}
		}
		if got := score(t, s, c, "alice"); got != unix(early) {
			t.Fatalf("alice due at %s, want %s (her earliest expiry)", got, unix(early))
		}
		// Nothing is due: the sweep changes nothing.
		if n, err := s.SweepM2M(ctx); err != nil || n != 0 {
			t.Fatalf("sweep before any expiry removed %d, %v", n, err)
		}
		advance(c, 13100*time.Millisecond)
		if n, err := s.SweepM2M(ctx); err != nil || n != 1 {
			t.Fatalf("sweep removed %d, %v; want 1", n, err)
		}
		// Rescheduled to the next expiry left in her index.
		if got := score(t, s, c, "alice"); got != unix(late) {
			t.Errorf("alice due at %s after the sweep, want %s", got, unix(late))
		}
		if n := c.ZCard(ctx, s.keys.m2mIndex("alice")).Val(); n != 2 {
			t.Errorf("alice's index holds %d, want 2", n)
		}
	})

	t.Run("NotDueOwnersUntouched", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		// bob's index holds an entry whose expiry has passed, but his score
		// says he is due in an hour: a sweep that walked every owner would
		// remove it, the schedule leaves him alone until then.
		if err := s.CreateM2MToken(ctx, tok("bob", "b0", base.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		if err := c.ZAdd(ctx, s.keys.m2mIndex("bob"), redis.Z{Score: float64(base.Add(-time.Minute).Unix()), Member: "stale"}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateM2MToken(ctx, tok("carol", "c0", base.Add(2*time.Second))); err != nil {
			t.Fatal(err)
		}
		advance(c, 3100*time.Millisecond)
		if n, err := s.SweepM2M(ctx); err != nil || n != 1 {
			t.Fatalf("sweep removed %d, %v; want 1 (carol's)", n, err)
		}
		if n := c.ZCard(ctx, s.keys.m2mIndex("bob")).Val(); n != 2 {
			t.Errorf("bob's index holds %d, want 2 (he was not due)", n)
		}
		if got := score(t, s, c, "carol"); got != "none" {
			t.Errorf("carol, with an empty index, still scheduled at %s", got)
		}
	})

	t.Run("OneOwnerManyBatches", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		exp := base.Add(3 * time.Second)
		for i := range 2*m2mSweepBatch + 7 {
			if err := s.CreateM2MToken(ctx, tok("dave", fmt.Sprintf("d%04d", i), exp)); err != nil {
				t.Fatal(err)
			}
		}
		advance(c, 4100*time.Millisecond)
		if n, err := s.SweepM2M(ctx); err != nil || n != 2*m2mSweepBatch+7 {
			t.Fatalf("sweep removed %d, %v; want %d in one run", n, err, 2*m2mSweepBatch+7)
		}
		if keys := allKeys(t, c, s.keys.prefix); len(keys) != 0 {
			t.Errorf("keys left: %v", keys)
		}
	})

	t.Run("DeleteManyBatches", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		n := 2*m2mDeleteBatch + 31
		var ids []string
		for i := range n {
			id := fmt.Sprintf("f%04d", i)
			ids = append(ids, id)
			if err := s.CreateM2MToken(ctx, tok("frank", id, base.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		// By ids, then all: every token blacklisted once, across batches.
		if bl, del, err := s.DeleteM2MTokens(ctx, "frank", ids[:m2mDeleteBatch+5]); err != nil || bl != int64(m2mDeleteBatch+5) || del != 0 {
			t.Fatalf("delete by ids: %d blacklisted, %d deleted, %v", bl, del, err)
		}
		if bl, del, err := s.DeleteM2MTokens(ctx, "frank", nil); err != nil || bl != int64(n-m2mDeleteBatch-5) || del != 0 {
			t.Fatalf("delete all: %d blacklisted, %d deleted, %v; want %d", bl, del, err, n-m2mDeleteBatch-5)
		}
		if got := c.SCard(ctx, s.keys.m2mBlacklistOf(digest("frank"))).Val(); got != int64(n) {
			t.Errorf("blacklist holds %d, want %d", got, n)
		}
		got, err := s.GetM2MTokens(ctx, nil, "frank", ids)
		if err != nil || len(got) != n {
			t.Fatalf("records: %d, %v", len(got), err)
		}
		for _, tk := range got {
			if !tk.Blacklisted() || tk.Version != 2 {
				t.Fatalf("%s: blacklisted %v, version %d", tk.ID, tk.Blacklisted(), tk.Version)
			}
		}
	})

	t.Run("MigratesOwnersSet", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		// A store written by an older tokend: owners in a SET, no schedule.
		if err := s.CreateM2MToken(ctx, tok("erin", "e0", base.Add(2*time.Second))); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateM2MToken(ctx, tok("erin", "e1", base.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		c.Del(ctx, s.keys.m2mDue())
		c.SAdd(ctx, s.keys.m2mOwners(), digest("erin"))
		advance(c, 3100*time.Millisecond)
		if n, err := s.SweepM2M(ctx); err != nil || n != 1 {
			t.Fatalf("sweep removed %d, %v; want 1", n, err)
		}
		if n := c.Exists(ctx, s.keys.m2mOwners()).Val(); n != 0 {
			t.Error("the old owners set is still there")
		}
		if got := score(t, s, c, "erin"); got != unix(base.Add(time.Hour)) {
			t.Errorf("erin due at %s, want %s", got, unix(base.Add(time.Hour)))
		}
	})
}
