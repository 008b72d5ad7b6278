package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore"
)

// cluster drives CreateM2MToken straight through the store (no tokend in
// between, so Redis, not tokend, is what saturates) on a Redis Cluster for
// -duration with -conc callers spread over -owners owners, and prints the
// rate and each master's share of the Redis CPU: with one owner, one
// master does all the work.
func clusterFlags(fs *flag.FlagSet) func(context.Context) error {
	addrs := fs.String("addrs", "", "the masters, host:port,host:port,...")
	owners := fs.Int("owners", 1, "owners the tokens are spread over")
	conc := fs.Int("conc", 64, "concurrent callers")
	dur := fs.Duration("duration", 10*time.Second, "run time")
	return func(ctx context.Context) error {
		st, err := redisstore.Open(ctx, "redis+cluster://"+*addrs, redisstore.Options{
			Prefix: fmt.Sprintf("scale%d", time.Now().UnixNano()), Durability: redisstore.Durability{Replicas: redisstore.ReplicasNone}})
		if err != nil {
			return err
		}
		defer st.Close()
		nodes := strings.Split(*addrs, ",")
		cpu := func() []float64 {
			out := make([]float64, len(nodes))
			for i, a := range nodes {
				c := redis.NewClient(&redis.Options{Addr: a})
				out[i] = redisCPU(ctx, c)
				c.Close()
			}
			return out
		}
		c0 := cpu()
		var n, failed atomic.Int64
		dctx, cancel := context.WithTimeout(ctx, *dur)
		defer cancel()
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := range *conc {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				var b [16]byte
				for i := 0; dctx.Err() == nil; i++ {
					for j := range b {
						b[j] = byte(r.Uint32())
					}
					now := time.Now()
					err := st.CreateM2MToken(dctx, redisstore.M2MToken{ID: base64.RawURLEncoding.EncodeToString(b[:]), Name: "n",
						Owner: fmt.Sprint("owner-", (w+i)%*owners), ClientID: "svc", Subject: "svc", Audience: []string{"api"},
						Scope: []string{"read"}, IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)})
					if err != nil {
						if dctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		el := time.Since(t0)
		c1 := cpu()
		var shares []string
		var tot float64
		for i := range nodes {
			tot += c1[i] - c0[i]
		}
		for i := range nodes {
			shares = append(shares, fmt.Sprintf("%.0f%%", (c1[i]-c0[i])/tot*100))
		}
		// owners creates_per_s failed redis_cpu_s_total per-master-shares busiest_master_cpu_share_of_core
		busiest := 0.0
		for i := range nodes {
			busiest = max(busiest, (c1[i]-c0[i])/el.Seconds())
		}
		fmt.Printf("cluster owners %d creates/s %.0f failed %d redis-cpu %.2fs masters %s busiest-master %.0f%%-of-a-core redis-cpu-per-create %.1fus\n",
			*owners, float64(n.Load())/el.Seconds(), failed.Load(), tot, strings.Join(shares, "/"), busiest*100,
			tot/float64(max(n.Load(), 1))*1e6)
		return nil
	}
}
