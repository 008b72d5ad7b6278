package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore"
)

// sweep measures the M2M expiry sweep as tokend runs it (once a minute):
// one run to clear what is due, then -wait (at least 10 s) for expirations
// to accumulate, then one measured run: its wall time and the Redis CPU it
// took (INFO cpu before and after, less what Redis spends on its own while
// idle; nothing else uses this Redis meanwhile).
func sweepFlags(fs *flag.FlagSet) func(context.Context) error {
	url := fs.String("redis", "", "redis URL")
	wait := fs.Duration("wait", time.Minute, "time between the sweeps")
	return func(ctx context.Context) error {
		st, err := redisstore.Open(ctx, *url, redisstore.Options{Durability: redisstore.Durability{Replicas: redisstore.ReplicasNone}})
		if err != nil {
			return err
		}
		defer st.Close()
		opt, _ := redis.ParseURL(*url)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		t0 := time.Now()
		n0, err := st.SweepM2M(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("first sweep: removed %d in %.1f ms\n", n0, float64(time.Since(t0).Microseconds())/1000)
		// Redis burns CPU of its own meanwhile (its expiry cycle deletes the
		// records as their TTLs pass, its cron): measured over the last 10 s
		// of the wait, and taken off the sweep's share pro rata.
		time.Sleep(*wait - 10*time.Second)
		i0, it0 := redisCPU(ctx, rdb), time.Now()
		time.Sleep(10 * time.Second)
		idle := (redisCPU(ctx, rdb) - i0) / time.Since(it0).Seconds()
		c0 := redisCPU(ctx, rdb)
		t0 = time.Now()
		n, err := st.SweepM2M(ctx)
		if err != nil {
			return err
		}
		wall := time.Since(t0)
		cpu := redisCPU(ctx, rdb) - c0 - idle*wall.Seconds()
		// sweep removed wall_ms redis_cpu_ms share_of_one_core_percent idle_redis_share_percent
		fmt.Printf("sweep %d %.1f %.1f %.3f %.2f\n", n, float64(wall.Microseconds())/1000, cpu*1000,
			cpu/wait.Seconds()*100, idle*100)
		return nil
	}
}

func redisCPU(ctx context.Context, rdb *redis.Client) float64 {
	s, _ := rdb.Info(ctx, "cpu").Result()
	var t float64
	for _, l := range strings.Split(s, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(l, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				t += f
			}
		}
	}
	return t
}

// slowlog prints how many SLOWLOG entries Redis holds, the slowest one
// (µs and command name) and the entries per command name.
func slowlogFlags(fs *flag.FlagSet) func(context.Context) error {
	url := fs.String("redis", "", "redis URL")
	return func(ctx context.Context) error {
		opt, _ := redis.ParseURL(*url)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		entries, err := rdb.SlowLogGet(ctx, -1).Result()
		if err != nil {
			return err
		}
		var slowest redis.SlowLog
		per := map[string]int{}
		for _, e := range entries {
			name := "?"
			if len(e.Args) > 0 {
				name = strings.ToLower(e.Args[0])
			}
			per[name]++
			if e.Duration > slowest.Duration {
				slowest = e
			}
		}
		name := "–"
		if len(slowest.Args) > 0 {
			name = strings.ToLower(slowest.Args[0])
			if (name == "evalsha" || name == "eval") && len(slowest.Args) > 1 {
				name += " " + slowest.Args[1][:min(8, len(slowest.Args[1]))]
			}
		}
		var parts []string
		for k, v := range per {
			parts = append(parts, fmt.Sprintf("%s:%d", k, v))
		}
		// entries slowest_us slowest_command per-command
		fmt.Printf("%d %d %s %s\n", len(entries), slowest.Duration.Microseconds(), strings.ReplaceAll(name, " ", "_"), strings.Join(parts, ","))
		return nil
	}
}
