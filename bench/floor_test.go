// Package bench holds the load harness (run, the wrk scripts, seed) and the
// floor benchmarks: what each hot call cannot avoid, measured alone, so that
// bench/run can say how far above it tokend's CPU per request is.
package bench

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/dpop/dpopclient"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/tokens"
)

// cpuTime is the CPU (user + system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds a cpu-ns/op metric: CPU used per operation since start, on all
// cores, which is what a server pays per request (ns/op is wall time).
func reportCPU(b *testing.B, start time.Duration, ops int) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(ops), "cpu-ns/op")
}

// m2mClaims are the claims of a typical M2M access token.
func m2mClaims() *tokens.Claims {
	now := time.Now()
	return &tokens.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "http://127.0.0.1:18080", Subject: "bench-m2m", Audience: jwt.ClaimStrings{"api"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
			ID: "Yp3nQm0yJ4aSgG7bq0nW1w",
		},
		ClientID: "bench-m2m", Scope: "read write", Kind: tokens.KindClient, Owner: "bench-owner",
	}
}

// BenchmarkFloor measures the parts every hot call needs at least once:
//   - sign: one Ed25519 access token (every call that issues a token);
//   - verify: one Ed25519 signature check (a bearer-checked call whose token
//     is not yet remembered);
//   - argon2id: one password check at tokend's default parameters (login);
//   - redis: one Redis command round trip, alone (each caller waits for its
//     own) and pipelined 64 at a time (callers sharing a pipeline, as
//     tokend's batcher does): the cheapest a round trip gets;
//   - redis/bearer-read-64: the one round trip of the bearer-checked call
//     (GetTokens with an id_filter of 4): its revocation check (HGET of the
//     bearer token's own record) and the four M2M records it returns (HGETALL of real records, read by
//     go-redis), 64 callers' worth to a pipeline, per caller.
//
// bench/run adds the CPU per request of GET /healthz under the same load (the
// HTTP exchange itself) and prints each call's measured CPU per request over
// its floor.
func BenchmarkFloor(b *testing.B) {
	key, err := tokens.GenerateKey(tokens.AlgEdDSA)
	if err != nil {
		b.Fatal(err)
	}
	ks, err := tokens.NewKeySet(key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		c := m2mClaims()
		start := cpuTime(b)
		for b.Loop() {
			if _, err := ks.Sign(c); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start, b.N)
	})
	b.Run("verify", func(b *testing.B) {
		tok, err := ks.Sign(m2mClaims())
		if err != nil {
			b.Fatal(err)
		}
		v := tokens.NewVerifier(ks, "http://127.0.0.1:18080", tokens.WithCacheSize(0))
		start := cpuTime(b)
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start, b.N)
	})

	// A DPoP proof's check: an ES256 signature and the claims (its replay record is one more
	// command in a pipeline: redis/setnx-64).
	b.Run("dpop-check", func(b *testing.B) {
		k, err := dpopclient.New()
		if err != nil {
			b.Fatal(err)
		}
		const htu = "http://127.0.0.1:18080/m2moauthserver.pb.M2MOAuthService/CreateToken"
		proof, err := k.Proof("POST", htu, "")
		if err != nil {
			b.Fatal(err)
		}
		c := dpop.NewChecker(dpop.Options{Issuer: "http://127.0.0.1:18080"})
		tgt := dpop.Target{Method: "POST", Scheme: "http", Host: "127.0.0.1:18080", Path: "/m2moauthserver.pb.M2MOAuthService/CreateToken"}
		start := cpuTime(b)
		for b.Loop() {
			if _, err := c.Check(context.Background(), proof, tgt); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start, b.N)
	})

	b.Run("argon2id", func(b *testing.B) {
		hash, err := passhash.Hash("bench-password")
		if err != nil {
			b.Fatal(err)
		}
		start := cpuTime(b)
		for b.Loop() {
			if err := passhash.Verify(hash, "bench-password"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start, b.N)
	})

	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
	defer rdb.Close()
	ctx := context.Background()
	// A one-key script: the shape of tokend's store operations, with no work in it.
	script := redis.NewScript(`return redis.call("EXISTS", KEYS[1])`)
	if err := script.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	b.Run("redis/alone", func(b *testing.B) {
		b.SetParallelism(32) // 64 callers at GOMAXPROCS 2, like the load runs
		start := cpuTime(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := script.EvalSha(ctx, rdb, []string{"tokend:floor"}).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportCPU(b, start, b.N)
	})
	b.Run("redis/pipelined-64", func(b *testing.B) {
		start := cpuTime(b)
		p := rdb.Pipeline()
		for b.Loop() { // one op is one command; every 64th sends the pipeline
			script.EvalSha(ctx, p, []string{"tokend:floor"})
			if p.Len() == 64 {
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			b.Fatal(err)
		}
		reportCPU(b, start, b.N)
	})
	b.Run("redis/bearer-read-64", func(b *testing.B) {
		records := m2mRecords(b, rdb)
		start := cpuTime(b)
		p := rdb.Pipeline()
		for b.Loop() {
			p.HGet(ctx, records[0], "bl")
			for _, k := range records {
				p.HGetAll(ctx, k)
			}
			if p.Len() == 64*(1+len(records)) {
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			b.Fatal(err)
		}
		reportCPU(b, start, b.N)
	})
	// Last: its keys would hide the records bearer-read-64 scans for.
	b.Run("redis/setnx-64", func(b *testing.B) { // the DPoP replay record, pipelined
		start := cpuTime(b)
		p := rdb.Pipeline()
		i := 0
		for b.Loop() {
			i++
			p.SetNX(ctx, "floor:dpop:"+strconv.Itoa(i), "1", time.Minute)
			if p.Len() == 64 {
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			b.Fatal(err)
		}
		reportCPU(b, start, b.N)
	})
}

// m2mRecords stores four M2M token records as tokend does (bench/seed's
// shape: client bench-m2m, audience api, scopes read and write) and returns
// their keys and their owner's blacklist key.
func m2mRecords(b *testing.B, rdb *redis.Client) (records []string) {
	ctx := context.Background()
	s := redisstore.New(rdb, redisstore.Options{Prefix: "floor"})
	now := time.Now().Truncate(time.Second)
	for range 4 {
		rec := redisstore.M2MToken{ID: redisstore.NewFamilyID() /* 128 random bits, as a jti */, Owner: "bench-owner",
			ClientID: "bench-m2m", Subject: "bench-m2m",
			Audience: []string{"api"}, Scope: []string{"read", "write"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateM2MToken(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	records, _, err := rdb.Scan(ctx, 0, "floor:m2m:*:t:*", 100).Result()
	if err != nil || len(records) != 4 {
		b.Fatalf("M2M records: %v, %v", records, err)
	}
	return records
}
