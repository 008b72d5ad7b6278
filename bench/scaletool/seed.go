package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore"
)

// The seeded state, as shares of N records (keys of tokend's own kinds):
// 70% M2M tokens, 20% session keys (refresh-token families and their
// tokens), 10% API tokens. M2M owners have a long tail: bench-owner (the
// owner bench-m2m manages, so the hot calls and the big-owner operations
// meet the biggest owner) holds a seventh of them up to 10^6, four more
// owners a 28th each, and the rest spread over owners sized S/k for rank
// k (a Zipf tail: one owner of S tokens down to many owners of one).
// Tokens expire uniformly over -window from now, 5% are blacklisted.
const (
	bigOwner   = "bench-owner"
	seedWorker = 4
	seedPipe   = 2000 // commands per pipeline
)

func seedFlags(fs *flag.FlagSet) func(context.Context) error {
	url := fs.String("redis", "", "redis URL of the private instance to seed")
	n := fs.Int("n", 10000, "records to seed")
	prefix := fs.String("prefix", "tokend", "key prefix")
	window := fs.Duration("window", 0, "M2M expiries spread uniformly over this (default: M2M tokens / 1000 per second, at least 1h)")
	legacy := fs.Bool("legacy-owners", false, "also write the M2M owners SET an older tokend's sweep walks")
	return func(ctx context.Context) error {
		opt, err := redis.ParseURL(*url)
		if err != nil {
			return err
		}
		opt.PoolSize = seedWorker * 2
		opt.ReadTimeout, opt.WriteTimeout = time.Minute, time.Minute
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		sd := &seeder{rdb: rdb, k: redisstore.NewSchema(*prefix), now: time.Now(), legacy: *legacy}
		m, sess := *n*7/10, *n*2/10
		api := *n - m - sess
		w := *window
		if w == 0 {
			w = max(time.Duration(m/1000)*time.Second, time.Hour)
		}
		for _, step := range []struct {
			kind string
			f    func(context.Context) (int, error)
		}{
			{"m2m", func(ctx context.Context) (int, error) { return sd.m2m(ctx, m, w) }},
			{"session", func(ctx context.Context) (int, error) { return sd.sessions(ctx, sess) }},
			{"apitoken", func(ctx context.Context) (int, error) { return sd.apiTokens(ctx, api) }},
		} {
			before := usedMemory(ctx, rdb)
			t0 := time.Now()
			count, err := step.f(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", step.kind, err)
			}
			after := usedMemory(ctx, rdb)
			// kind records seconds used_memory_delta bytes_per_record
			fmt.Printf("%s %d %.1f %d %.0f\n", step.kind, count, time.Since(t0).Seconds(), after-before,
				float64(after-before)/float64(max(count, 1)))
		}
		fmt.Printf("owners %d big %d\n", sd.owners, sd.bigSize)
		fmt.Printf("expiry_window_s %.0f expirations_per_s %.0f\n", w.Seconds(), float64(m)/w.Seconds())
		return nil
	}
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	rdb.Do(ctx, "MEMORY", "PURGE")
	s, _ := rdb.Info(ctx, "memory").Result()
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

type seeder struct {
	rdb     *redis.Client
	k       redisstore.Schema
	now     time.Time
	legacy  bool
	owners  int
	bigSize int
}

// ownerSizes splits m tokens over owners as the package comment says.
func ownerSizes(m int) []int {
	big := min(m/7, 1_000_000)
	sizes := []int{big}
	for range 4 {
		sizes = append(sizes, m/28)
	}
	rest := m - big - 4*(m/28)
	sum := func(s int) int {
		t := 0
		for k := 1; k <= s; k++ {
			t += max(1, s/k)
		}
		return t
	}
	lo, hi := 1, max(rest, 1)
	for lo < hi { // the largest S whose tail fits in rest
		mid := (lo + hi + 1) / 2
		if sum(mid) <= rest {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	left := rest
	for k := 1; k <= lo && left > 0; k++ {
		s := min(max(1, lo/k), left)
		sizes = append(sizes, s)
		left -= s
	}
	if left > 0 {
		sizes = append(sizes, left)
	}
	return sizes
}

// par runs f(worker, lo, hi) over [0, n) split among the workers, each with
// its own pipeline flushed every seedPipe commands.
func (sd *seeder) par(ctx context.Context, n int, f func(p redis.Pipeliner, r *rand.Rand, lo, hi int)) error {
	var wg sync.WaitGroup
	errs := make([]error, seedWorker)
	for w := range seedWorker {
		lo, hi := n*w/seedWorker, n*(w+1)/seedWorker
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(sd.now.UnixNano())))
			p := sd.rdb.Pipeline()
			for i := lo; i < hi; i += 500 {
				f(p, r, i, min(i+500, hi))
				if p.Len() >= seedPipe {
					if _, err := p.Exec(ctx); err != nil {
						errs[w] = err
						return
					}
				}
			}
			if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
				errs[w] = err
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func id(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hex32(r *rand.Rand) string {
	var b [32]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// m2m writes m M2M tokens as CreateM2MToken does (record with the token's
// expiry as TTL, index entry, schedule entry), 5% blacklisted as
// DeleteM2MTokens leaves them.
func (sd *seeder) m2m(ctx context.Context, m int, window time.Duration) (int, error) {
	sizes := ownerSizes(m)
	sd.owners, sd.bigSize = len(sizes), sizes[0]
	// One flat list of (owner, n) chunks of at most 500, so that workers
	// share big owners.
	type chunk struct{ owner, n int }
	var chunks []chunk
	for o, s := range sizes {
		for s > 0 {
			c := min(s, 500)
			chunks = append(chunks, chunk{o, c})
			s -= c
		}
	}
	ownerName := func(o int) string {
		if o == 0 {
			return bigOwner
		}
		return "owner-" + strconv.Itoa(o)
	}
	now := sd.now.Unix()
	aud, scope := `["api"]`, `["read","write"]`
	err := sd.par(ctx, len(chunks), func(p redis.Pipeliner, r *rand.Rand, lo, hi int) {
		for _, c := range chunks[lo:hi] {
			owner := ownerName(c.owner)
			client := "client-" + strconv.Itoa(c.owner%1000)
			idx, bl := sd.k.M2MIndex(owner), sd.k.M2MBlacklist(owner)
			earliest := int64(1 << 62)
			for range c.n {
				jti := id(r)
				exp := now + 60 + r.Int64N(int64(window.Seconds()))
				earliest = min(earliest, exp)
				blv, ver := "0", "1"
				if r.IntN(20) == 0 {
					blv, ver = strconv.FormatInt(now-10, 10), "2"
					p.SAdd(ctx, bl, jti)
				}
				key := sd.k.M2MToken(owner, jti)
				p.HSet(ctx, key, "name", "svc token", "owner", owner, "client", client, "sub", client,
					"aud", aud, "scope", scope, "iat", now, "exp", exp, "claims", "", "ver", ver, "bl", blv)
				p.PExpireAt(ctx, key, time.Unix(exp, 0))
				p.ZAdd(ctx, idx, redis.Z{Score: float64(exp), Member: jti})
			}
			// The schedule keeps the owner's earliest expiry (GT would
			// not do: chunks of one owner arrive in any order).
			p.ZAddArgs(ctx, sd.k.M2MDue(), redis.ZAddArgs{LT: true, Members: []redis.Z{{Score: float64(earliest), Member: sd.k.Digest(owner)}}})
			if sd.legacy {
				p.SAdd(ctx, sd.k.M2MOwners(), sd.k.Digest(owner))
			}
		}
	})
	return m, err
}

// sessions writes families with 0-3 rotations (their used tokens kept, as
// rotate_refresh.lua keeps them), 5% revoked, totalling about n keys. It
// returns the number of keys.
func (sd *seeder) sessions(ctx context.Context, n int) (int, error) {
	fams := n * 10 / 27 // keys per family: 1 + (gen + 1), gen 0-3 weighted 50/25/15/10 → 2.7
	var mu sync.Mutex
	total := 0
	now := sd.now.Unix()
	err := sd.par(ctx, fams, func(p redis.Pipeliner, r *rand.Rand, lo, hi int) {
		keys := 0
		for i := lo; i < hi; i++ {
			g := 0
			switch x := r.IntN(100); {
			case x >= 90:
				g = 3
			case x >= 75:
				g = 2
			case x >= 50:
				g = 1
			}
			fam := id(r)
			ttl := time.Duration(1+r.IntN(30)) * 24 * time.Hour
			revoked := "0"
			if r.IntN(20) == 0 {
				revoked = "1"
			}
			client := "1001"
			if i%2 == 0 {
				client = ""
			}
			fk := sd.k.Family(fam)
			p.HSet(ctx, fk, "user", strconv.Itoa(1+i%max(1, n/20)), "client", client, "scope", "read",
				"auth_time", now-3600, "created", now-3600, "revoked", revoked, "gen", g)
			p.PExpire(ctx, fk, ttl)
			for j := 0; j <= g; j++ {
				tk := sd.k.Refresh(fam, hex32(r))
				if j < g {
					p.HSet(ctx, tk, "state", "used", "used_at", (now-60)*1000, "gen", j)
				} else {
					p.HSet(ctx, tk, "state", "active", "gen", g)
				}
				p.PExpire(ctx, tk, ttl)
			}
			keys += g + 2
		}
		mu.Lock()
		total += keys
		mu.Unlock()
	})
	return total, err
}

// apiTokens writes n API tokens over n/5 owners, half with an expiry.
func (sd *seeder) apiTokens(ctx context.Context, n int) (int, error) {
	now := sd.now.Unix()
	err := sd.par(ctx, n, func(p redis.Pipeliner, r *rand.Rand, lo, hi int) {
		for i := lo; i < hi; i++ {
			owner := strconv.Itoa(1000 + i%max(1, n/5))
			tid := id(r)
			expires := int64(0)
			if i%2 == 0 {
				expires = now + 90*86400
			}
			key := sd.k.APIToken(tid)
			p.HSet(ctx, key, "owner", owner, "name", "ci token", "secret_hash", hex32(r),
				"created", now, "expires", expires, "last_used", 0)
			if expires != 0 {
				p.ExpireAt(ctx, key, time.Unix(expires, 0))
			}
			p.ZAdd(ctx, sd.k.APITokenOwner(owner), redis.Z{Score: float64(now), Member: tid})
		}
	})
	return n, err
}
