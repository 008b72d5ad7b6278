package redisstore

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/redisstore/redistest"
)

// The benchmarks run against a real redis-server on loopback: what they
// measure is mostly the round trip and the script, which miniredis would
// not show. SetParallelism(16): many goroutines per core, to measure
// throughput rather than one round trip at a time.

var benchSession = Session{UserID: "1", Scope: "read"}

func benchStore(b *testing.B) *Store {
	b.Helper()
	srv := redistest.Start(b)
	s, err := Open(b.Context(), srv.URL, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func BenchmarkCreateRefresh(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreateRefresh(b.Context(), benchSession, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRotateRefresh rotates chains of refresh tokens, one per
// goroutine: every call is a real consume-and-issue.
func BenchmarkRotateRefresh(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		cur, err := s.CreateRefresh(b.Context(), benchSession, time.Hour)
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			next, _, err := s.RotateRefresh(b.Context(), cur.Token, rot(time.Hour, 0))
			if err != nil {
				b.Error(err)
				return
			}
			cur = next
		}
	})
}

// BenchmarkFamilyActive is the bearer-token revocation hook's cost.
func BenchmarkFamilyActive(b *testing.B) {
	s := benchStore(b)
	r, err := s.CreateRefresh(b.Context(), benchSession, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := s.FamilyActive(b.Context(), r.FamilyID); err != nil || !ok {
				b.Error(ok, err)
				return
			}
		}
	})
}

// BenchmarkLimitTake counts a login attempt as Login does: against a
// (username, address) and an address counter in one group and the
// username's ceiling in another (two slots, one pipeline).
func BenchmarkLimitTake(b *testing.B) {
	s := benchStore(b)
	groups := []LimitGroup{
		{Tag: "a:10.0.0.1", Limits: []Limit{{"login-user:alice", 1 << 30}, {"login-addr", 1 << 30}}},
		{Tag: "u:alice", Limits: []Limit{{"login-user", 1 << 30}}},
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.LimitTake(b.Context(), time.Hour, groups...); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetAPIToken(b *testing.B) {
	s := benchStore(b)
	sum := sha256.Sum256([]byte("secret"))
	rec := APIToken{ID: "api_token_bench", Owner: "1", SecretHash: sum[:], CreatedAt: time.Now()}
	if err := s.CreateAPIToken(b.Context(), rec, 10); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetAPIToken(b.Context(), rec.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetM2MTokens reads 4 of an owner's M2M token records, as the
// bearer-checked GetTokens with an id_filter of 4 does.
func BenchmarkGetM2MTokens(b *testing.B) {
	s := benchStore(b)
	ids := []string{"bench0", "bench1", "bench2", "bench3"}
	for _, id := range ids {
		rec := M2MToken{ID: id, Name: "bench", Owner: "1", ClientID: "bench-m2m", Subject: "bench-m2m",
			Audience: []string{"https://api.example"}, Scope: []string{"read", "write"},
			IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.CreateM2MToken(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, err := s.GetM2MTokens(b.Context(), nil, "1", ids); err != nil || len(got) != len(ids) {
				b.Error(len(got), err)
				return
			}
		}
	})
}

// BenchmarkDurability is the cost of waiting for a replica (Durability)
// on the writes that revoke or rotate: refresh-token rotations on a master
// with one replica, with ReplicasNone and with the default (WAIT for 1
// replica), at 16 goroutines per core (batched: one WAIT per pipeline) and
// at 1 (one WAIT per call).
func BenchmarkDurability(b *testing.B) {
	m := redistest.Start(b)
	redistest.StartReplica(b, m)
	for _, d := range []struct {
		name     string
		replicas int
	}{{"none", ReplicasNone}, {"replica1", ReplicasAuto}} {
		s, err := Open(b.Context(), m.URL, Options{Durability: Durability{Replicas: d.replicas}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("rotate/%s/par%d", d.name, par), func(b *testing.B) {
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					cur, err := s.CreateRefresh(b.Context(), benchSession, time.Hour)
					if err != nil {
						b.Error(err)
						return
					}
					for pb.Next() {
						next, _, err := s.RotateRefresh(b.Context(), cur.Token, rot(time.Hour, 0))
						if err != nil {
							b.Error(err)
							return
						}
						cur = next
					}
				})
			})
		}
	}
}
