package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore/redistest"
)

var durSess = Session{UserID: "42", ClientID: "1001", Scope: "profile", AuthTime: 1_700_000_000}

// acknowledged runs do until it succeeds, at most 10 times a fifth of a
// second apart: where a replica is attached, a busy machine (CI under -race)
// may still miss a WAIT's timeout several times in a row while the replica
// waits for a core, and ErrUnavailable is exactly what tells a client to try
// again.
func acknowledged(do func() error) error {
	var err error
	for range 10 {
		if err = do(); !IsUnavailable(err) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// cutReplicas cuts master's replication: the replicas are paused (SIGSTOP,
// so they cannot reconnect) and the master drops their links.
func cutReplicas(t *testing.T, master *redistest.Server, replicas ...*redistest.Server) {
	t.Helper()
	for _, r := range replicas {
		r.Pause(t)
	}
	c := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer c.Close()
	if err := c.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica: %v", err)
	}
}

// TestDurabilityWait checks which writes wait for a replica: with one
// replica attached, ReplicasAuto waits; once the replica is cut off, every
// write that revokes or rotates fails with ErrUnavailable while creations
// and reads go on; ReplicasNone does not wait; when the replica is back,
// revocations succeed again.
func TestDurabilityWait(t *testing.T) {
	m := redistest.Start(t)
	r := redistest.StartReplica(t, m)
	s, err := Open(t.Context(), m.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.want(""); got != 1 {
		t.Fatalf("ReplicasAuto with a replica attached waits for %d replicas, want 1", got)
	}
	none, err := Open(t.Context(), m.URL, Options{Durability: Durability{Replicas: ReplicasNone}})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	ctx := t.Context()

	type revocation struct {
		name string
		do   func(s *Store) error
	}
	// Each revocation's victim is made afresh on every call.
	revocations := []revocation{
		{"RevokeRefresh", func(s *Store) error {
			rt, err := s.CreateRefresh(ctx, durSess, time.Hour)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return s.RevokeRefresh(ctx, rt.Token)
		}},
		{"RevokeFamily", func(s *Store) error {
			rt, err := s.CreateRefresh(ctx, durSess, time.Hour)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return s.RevokeFamily(ctx, rt.FamilyID)
		}},
		{"RotateRefresh", func(s *Store) error {
			rt, err := s.CreateRefresh(ctx, durSess, time.Hour)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			_, _, err = s.RotateRefresh(ctx, rt.Token, rot(time.Hour, 0))
			return err
		}},
		{"ExchangeCode", func(s *Store) error {
			code, err := s.CreateCode(ctx, AuthCode{UserID: "42", ClientID: "1001", RedirectURI: "https://app.example/cb",
				Scope: "profile", FamilyID: NewFamilyID()}, time.Minute)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			_, _, err = s.ExchangeCode(ctx, code, CodeCheck{ClientID: "1001", RedirectURI: "https://app.example/cb"}, time.Hour)
			return err
		}},
		{"DeleteM2MTokens", func(s *Store) error {
			id := NewFamilyID()
			rec := M2MToken{ID: id, Name: "n", Owner: "7", ClientID: "svc", Subject: "svc", Audience: []string{"api"},
				Scope: []string{"read"}, IssuedAt: time.Now().Truncate(time.Second), Claims: []byte(`{}`)}
			if err := s.CreateM2MToken(ctx, rec); err != nil {
				return fmt.Errorf("create: %w", err)
			}
			_, _, err := s.DeleteM2MTokens(ctx, "7", []string{id})
			return err
		}},
		{"DeleteAPIToken", func(s *Store) error {
			id := "api_token_" + strings.ToLower(NewFamilyID())
			rec := APIToken{ID: id, Owner: "7", Name: "n", SecretHash: []byte{1}, CreatedAt: time.Now()}
			if err := s.CreateAPIToken(ctx, rec, 100); err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return s.DeleteAPIToken(ctx, "7", id)
		}},
	}
	for _, rv := range revocations {
		if err := acknowledged(func() error { return rv.do(s) }); err != nil {
			t.Errorf("%s with the replica attached: %v", rv.name, err)
		}
	}

	cutReplicas(t, m, r)
	for _, rv := range revocations {
		err := rv.do(s)
		if !IsUnavailable(err) || strings.HasPrefix(err.Error(), "create") {
			t.Errorf("%s with the replica cut off: %v, want ErrUnavailable from the revocation", rv.name, err)
		}
		if err := rv.do(none); err != nil {
			t.Errorf("%s with ReplicasNone and the replica cut off: %v", rv.name, err)
		}
	}
	// Reads and creations do not wait, not even behind revocations that
	// keep every pipeline worker busy in their WAIT.
	slow, err := Open(ctx, m.URL, Options{Durability: Durability{Replicas: 1, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	rt, err := slow.CreateRefresh(ctx, durSess, time.Hour)
	if err != nil {
		t.Fatalf("CreateRefresh with the replica cut off: %v", err)
	}
	revoked := make(chan error, 2*batchWorkers)
	for range 2 * batchWorkers {
		go func() { revoked <- slow.RevokeFamily(ctx, NewFamilyID()) }()
	}
	time.Sleep(100 * time.Millisecond) // the revocations' pipelines are out, waiting
	if _, err := slow.RefreshClient(ctx, rt.Token); err != nil {
		t.Fatalf("RefreshClient with the replica cut off: %v", err)
	}
	if _, err := slow.CreateRefresh(ctx, durSess, time.Hour); err != nil {
		t.Fatalf("CreateRefresh with the replica cut off: %v", err)
	}
	left := 2 * batchWorkers
	select {
	case err := <-revoked:
		t.Errorf("a revocation returned (%v) before the reads: the reads waited behind the WAIT", err)
		left--
	default:
	}
	for range left {
		if err := <-revoked; !IsUnavailable(err) {
			t.Errorf("RevokeFamily with the replica cut off: %v, want ErrUnavailable", err)
		}
	}

	r.Resume(t)
	redistest.WaitReplicaLink(t, r, 10*time.Second)
	for _, rv := range revocations {
		if err := acknowledged(func() error { return rv.do(s) }); err != nil {
			t.Errorf("%s with the replica back: %v", rv.name, err)
		}
	}
}

// TestDurabilityStandalone: a server without replicas (development) works
// with the default; asking for a replica it does not have refuses
// revocations.
func TestDurabilityStandalone(t *testing.T) {
	m := redistest.Start(t)
	ctx := t.Context()
	for _, tt := range []struct {
		replicas int
		ok       bool
	}{{ReplicasAuto, true}, {ReplicasNone, true}, {1, false}} {
		s, err := Open(ctx, m.URL, Options{Durability: Durability{Replicas: tt.replicas, Timeout: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := s.CreateRefresh(ctx, durSess, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		err = s.RevokeRefresh(ctx, rt.Token)
		if tt.ok && err != nil || !tt.ok && !IsUnavailable(err) {
			t.Errorf("replicas %d: RevokeRefresh: %v, want ok %v", tt.replicas, err, tt.ok)
		}
		s.Close()
	}
}

// cutAndCrash is the durability scenario: tokens made and replicated, then
// the replicas cut off while revocations and rotations run, then the master
// killed and promote called. It returns how many revocations and rotations
// were acknowledged, refused, and acknowledged but lost after the
// promotion (checked on the store after, which reaches the new master).
func cutAndCrash(t *testing.T, before *Store, master *redistest.Server, replicas []*redistest.Server,
	promote func() *Store) (acked, refused, lost int) {
	t.Helper()
	ctx := t.Context()
	const n = 120
	toks := make([]IssuedRefresh, n)
	for i := range toks {
		rt, err := before.CreateRefresh(ctx, durSess, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = rt
	}
	// The records reach the replicas before the cut.
	if err := acknowledged(func() error { return before.RevokeFamily(ctx, NewFamilyID()) }); err != nil {
		t.Fatalf("a revocation before the cut: %v", err)
	}
	waitReplicated(t, master, len(replicas))

	type outcome struct {
		rotate bool
		err    error
	}
	outcomes := make([]outcome, n)
	phase := func(lo, hi int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := lo + w; i < hi; i += 8 {
					var err error
					rotate := i%2 == 1
					if rotate {
						_, _, err = before.RotateRefresh(ctx, toks[i].Token, rot(time.Hour, 0))
					} else {
						err = before.RevokeRefresh(ctx, toks[i].Token)
					}
					outcomes[i] = outcome{rotate, err}
				}
			})
		}
		wg.Wait()
	}
	phase(0, n/2) // half before the cut, half after
	cutReplicas(t, master, replicas...)
	phase(n/2, n)
	master.Stop()
	for _, r := range replicas {
		r.Resume(t)
	}
	after := promote()

	for i, o := range outcomes {
		switch {
		case o.err == nil:
			acked++
		case IsUnavailable(o.err):
			refused++
			continue
		default:
			t.Fatalf("token %d: %v", i, o.err)
		}
		// An acknowledged rotation used the token up; an acknowledged
		// revocation revoked its family. Either way the token must not
		// rotate again.
		_, _, err := after.RotateRefresh(ctx, toks[i].Token, rot(time.Hour, 0))
		switch {
		case err == nil:
			lost++
		case IsUnavailable(err):
			t.Fatalf("the promoted master is unavailable: %v", err)
		}
	}
	t.Logf("%d revocations and rotations acknowledged, %d refused (unavailable), %d acknowledged and lost", acked, refused, lost)
	return acked, refused, lost
}

// waitReplicated waits until every replica has acknowledged the master's
// whole replication stream.
func waitReplicated(t *testing.T, master *redistest.Server, replicas int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer c.Close()
	if replicas == 0 {
		return
	}
	n, err := c.Do(t.Context(), "WAIT", replicas, 5000).Int()
	if err != nil || n < replicas {
		// This connection wrote nothing: WAIT returns at once. Compare
		// offsets instead.
		t.Logf("WAIT: %d, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := c.Info(t.Context(), "replication").Result()
		if err == nil && replicatedAll(info, replicas) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not catch up within 5s:\n%s", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func replicatedAll(info string, replicas int) bool {
	var offset string
	var offsets []string
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "master_repl_offset" {
			offset = v
		}
		if strings.HasPrefix(k, "slave") && strings.Contains(v, "offset=") {
			_, o, _ := strings.Cut(v, "offset=")
			o, _, _ = strings.Cut(o, ",")
			offsets = append(offsets, o)
		}
	}
	if len(offsets) < replicas {
		return false
	}
	for _, o := range offsets {
		if o != offset {
			return false
		}
	}
	return true
}

// TestDurabilityReplicaCut: replication cut, then revocations and
// rotations, then the master's crash and the replica's promotion. With the
// default durability each is refused or survives; with ReplicasNone the
// ones acknowledged after the cut are lost (which shows the test can see a
// loss).
func TestDurabilityReplicaCut(t *testing.T) {
	for _, tt := range []struct {
		name     string
		replicas int
	}{{"auto", ReplicasAuto}, {"none", ReplicasNone}} {
		t.Run(tt.name, func(t *testing.T) {
			m := redistest.Start(t)
			r := redistest.StartReplica(t, m)
			s, err := Open(t.Context(), m.URL, Options{Durability: Durability{Replicas: tt.replicas}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			acked, refused, lost := cutAndCrash(t, s, m, []*redistest.Server{r}, func() *Store {
				c := redis.NewClient(&redis.Options{Addr: r.Addr})
				defer c.Close()
				if err := c.ReplicaOf(t.Context(), "NO", "ONE").Err(); err != nil {
					t.Fatalf("REPLICAOF NO ONE: %v", err)
				}
				after, err := Open(t.Context(), r.URL, Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { after.Close() })
				return after
			})
			switch tt.replicas {
			case ReplicasAuto:
				if lost > 0 {
					t.Errorf("%d acknowledged revocations or rotations lost in the failover", lost)
				}
				if refused == 0 || acked == 0 {
					t.Errorf("acknowledged %d, refused %d: want both before and after the cut", acked, refused)
				}
			case ReplicasNone:
				if lost == 0 {
					t.Error("without durability nothing was lost: the scenario does not cut replication")
				}
			}
		})
	}
}

// TestDurabilitySentinel is the same scenario on a Sentinel set-up (a
// master, 2 replicas, 3 Sentinels), the store following the master through
// redis+sentinel:// before and after the Sentinels' failover.
func TestDurabilitySentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a Sentinel failover")
	}
	m := redistest.Start(t)
	r1 := redistest.StartReplica(t, m)
	r2 := redistest.StartReplica(t, m)
	ss := redistest.StartSentinels(t, 3, m, 2, time.Second)
	s, err := Open(t.Context(), ss.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.want(""); got != 1 {
		t.Fatalf("ReplicasAuto over Sentinel waits for %d replicas, want 1", got)
	}
	acked, refused, lost := cutAndCrash(t, s, m, []*redistest.Server{r1, r2}, func() *Store {
		deadline := time.Now().Add(30 * time.Second)
		for ss.Master(t) == m.Addr {
			if time.Now().After(deadline) {
				t.Fatal("the Sentinels did not promote a replica within 30s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The same store follows the new master; wait until it answers.
		for {
			err := s.Ping(t.Context())
			if err == nil {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store does not reach the new master: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if lost > 0 {
		t.Errorf("%d acknowledged revocations or rotations lost in the failover", lost)
	}
	if refused == 0 || acked == 0 {
		t.Errorf("acknowledged %d, refused %d: want both before and after the cut", acked, refused)
	}
}

// TestDurabilityClusterPerNode: on a Cluster the WAIT goes to the node that
// took the writes. With one master's replica cut off, revocations on that
// master's slots are refused and those on the other masters acknowledged,
// even when the batcher sends them in one pipeline.
func TestDurabilityClusterPerNode(t *testing.T) {
	c := redistest.StartClusterReplicas(t, 3, 1)
	s, err := Open(t.Context(), c.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	const n = 48
	toks := make([]IssuedRefresh, n)
	for i := range toks {
		if toks[i], err = s.CreateRefresh(ctx, durSess, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	master, replica := c.MasterFor(t, s.keys.family(toks[0].FamilyID))
	cutReplicas(t, master, replica)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() { errs[i] = s.RevokeRefresh(ctx, toks[i].Token) })
	}
	wg.Wait()
	var refused, acked int
	for i, err := range errs {
		m, _ := c.MasterFor(t, s.keys.family(toks[i].FamilyID))
		switch {
		case m == master && IsUnavailable(err):
			refused++
		case m != master && (err == nil || acknowledged(func() error { return s.RevokeRefresh(ctx, toks[i].Token) }) == nil):
			acked++
		default:
			t.Errorf("token on %s (cut off: %v): RevokeRefresh = %v", m.Addr, m == master, err)
		}
	}
	t.Logf("%d revocations on the master cut off from its replica refused, %d on the others acknowledged", refused, acked)
	if refused == 0 || acked == 0 {
		t.Errorf("refused %d, acknowledged %d: want both", refused, acked)
	}
}
