package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
)

// bigowner runs one operation over bench-owner's tokens (GetTokens {} with
// blacklisted ones, or DeleteTokens {}) while -others callers create tokens
// for another owner (client bench-other) in a loop, and reports the
// operation's time, its stream rate and time to first message, tokend's RSS
// before and at its peak, and the other owner's CreateToken latency before
// and during the operation.
func bigOwnerFlags(fs *flag.FlagSet) func(context.Context) error {
	url := fs.String("url", "", "tokend base URL")
	bearer := fs.String("bearer", "", "an access token that manages bench-owner's tokens")
	pid := fs.Int("pid", 0, "tokend's process id (RSS)")
	op := fs.String("op", "get", "get or delete")
	others := fs.Int("others", 8, "concurrent CreateToken callers of another owner")
	return func(ctx context.Context) error {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		c := m2mpbconnect.NewM2MOAuthServiceClient(hc, *url)
		auth := func(h http.Header) { h.Set("Authorization", "Bearer "+*bearer) }

		var (
			mu     sync.Mutex
			phase  atomic.Int32 // 0 before, 1 during, 2 after
			lat    [2][]time.Duration
			failed atomic.Int64
		)
		octx, stop := context.WithCancel(ctx)
		defer stop()
		var wg sync.WaitGroup
		for range *others {
			wg.Go(func() {
				for octx.Err() == nil {
					t0 := time.Now()
					_, err := c.CreateToken(octx, connect.NewRequest(&m2mpb.CreateTokenRequest{
						GrantType: "client_credentials", ClientId: "bench-other", ClientSecret: "bench-m2m-secret", Audience: []string{"api"},
					}))
					d := time.Since(t0)
					if err != nil {
						if octx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					if p := phase.Load(); p < 2 {
						mu.Lock()
						lat[p] = append(lat[p], d)
						mu.Unlock()
					}
				}
			})
		}
		rssBefore := rss(*pid)
		time.Sleep(3 * time.Second)
		var peak atomic.Int64
		peak.Store(rssBefore)
		sctx, sstop := context.WithCancel(ctx)
		defer sstop()
		go func() {
			for sctx.Err() == nil {
				if v := rss(*pid); v > peak.Load() {
					peak.Store(v)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		phase.Store(1)
		t0 := time.Now()
		var first time.Duration
		var msgs int64
		var result string
		switch *op {
		case "get":
			req := connect.NewRequest(&m2mpb.GetTokensRequest{IncludeBlacklisted: true})
			auth(req.Header())
			st, err := c.GetTokens(ctx, req)
			if err != nil {
				return err
			}
			for st.Receive() {
				if msgs == 0 {
					first = time.Since(t0)
				}
				msgs++
			}
			if err := st.Err(); err != nil {
				result = "error: " + err.Error()
			}
		case "delete":
			req := connect.NewRequest(&m2mpb.DeleteTokensRequest{})
			auth(req.Header())
			r, err := c.DeleteTokens(ctx, req)
			if err != nil {
				return err
			}
			result = fmt.Sprintf("blacklisted %d deleted %d", r.Msg.BlacklistedCount, r.Msg.DeletedCount)
		default:
			return fmt.Errorf("unknown op %q", *op)
		}
		total := time.Since(t0)
		phase.Store(2)
		sstop()
		stop()
		wg.Wait()
		p99 := func(d []time.Duration) string {
			if len(d) == 0 {
				return "–"
			}
			slices.Sort(d)
			return fmt.Sprintf("%.1f", float64(d[len(d)*99/100].Microseconds())/1000)
		}
		// op total_s messages msgs_per_s first_ms rss_before_mb rss_peak_mb other_p99_before_ms other_p99_during_ms other_calls_during other_failed
		fmt.Printf("%s %.1f %d %.0f %.1f %.0f %.0f %s %s %d %d %s\n", *op, total.Seconds(), msgs,
			float64(msgs)/total.Seconds(), float64(first.Microseconds())/1000,
			float64(rssBefore)/1024, float64(peak.Load())/1024, p99(lat[0]), p99(lat[1]), len(lat[1]), failed.Load(),
			strings.ReplaceAll(result, " ", "_"))
		return nil
	}
}

// rss is VmRSS of process pid in kB (0 when unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
