package server_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/redisstore"
)

// TestGetTokensStreamsInBoundedMemory stores 100,000 M2M tokens for one
// owner and streams them all through GetTokens (Connect, HTTP/1.1), sampling
// the process heap (server and client share it) every 5 ms. The listing
// reads Redis 500 records at a time, so the heap stays far below what the
// 100,000 records take at once. Run with -v to see the numbers; skipped
// with -short.
func TestGetTokensStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 tokens")
	}
	const n = 100_000
	ts := startM2M(t, "", func(c *config.Config) { c.Tokens.MaxM2MTokensPerOwner = n })
	store := ts.srv.Store()
	ctx := context.Background()
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				rec := redisstore.M2MToken{ID: fmt.Sprintf("tok%06d", i), Name: "bulk", Owner: "7", ClientID: "svc", Subject: "svc",
					Audience: []string{"api"}, Scope: []string{"read", "write"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
					Claims: []byte(`{"sub":"7","kind":"user","iss":"http://example"}`)}
				if err := store.CreateM2MToken(ctx, rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	hc := &http.Client{Transport: bearerTransport(accessToken(t, ts, "alice"))}
	stream, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL).GetTokens(ctx, connect.NewRequest(&m2mpb.GetTokensRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for stream.Receive() {
		got++
	}
	close(stop)
	<-sampled
	if err := stream.Err(); err != nil || got != n {
		t.Fatalf("streamed %d tokens, %v; want %d", got, err, n)
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("streamed %d tokens; heap in use %.1f MB before, peak %.1f MB (+%.1f MB)",
		got, float64(base)/1e6, float64(peak.Load())/1e6, float64(growth)/1e6)
	// The 100,000 records take 35 MB as bare Go structs (measured), and
	// several times that as the maps Redis replies decode into: a listing
	// that held them all could not stay under this.
	if growth > 24<<20 {
		t.Errorf("heap grew by %.1f MB while streaming", float64(growth)/1e6)
	}
}
