package redisstore

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/tokend/tokend/redisstore/redistest"
)

// The benchmarks run against a real redis-server on loopback: what they
// measure is mostly the round trip and the script, which miniredis would
// not show.

func benchStore(b *testing.B) *Store {
	b.Helper()
	srv := redistest.Start(b)
	s, err := Open(context.Background(), srv.URL, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func BenchmarkCreateRefresh(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.SetParallelism(16) // 32 goroutines on 2 cores: throughput, not one round trip
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreateRefresh(ctx, sess, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRotateRefresh rotates chains of refresh tokens, one per
// goroutine: every call is a real consume-and-issue.
func BenchmarkRotateRefresh(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.SetParallelism(16) // 32 goroutines on 2 cores: throughput, not one round trip
	b.RunParallel(func(pb *testing.PB) {
		cur, err := s.CreateRefresh(ctx, sess, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		for pb.Next() {
			next, _, err := s.RotateRefresh(ctx, cur.Token, time.Hour, 0)
			if err != nil {
				b.Fatal(err)
			}
			cur = next
		}
	})
}

func BenchmarkGetAPIToken(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	sum := sha256.Sum256([]byte("secret"))
	rec := APIToken{ID: "api_token_bench", Owner: "1", SecretHash: sum[:], CreatedAt: time.Now()}
	if err := s.CreateAPIToken(ctx, rec, 10); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // 32 goroutines on 2 cores: throughput, not one round trip
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetAPIToken(ctx, rec.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFamilyActive(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	r, err := s.CreateRefresh(ctx, sess, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // 32 goroutines on 2 cores: throughput, not one round trip
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := s.FamilyActive(ctx, r.FamilyID); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}
