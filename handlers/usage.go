package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// usageRecorder remembers when API tokens were last used and writes those
// times to the store in batches, off the request path: a GetAccessToken call
// never waits for it. Uses closer together than the store's resolution are
// coalesced.
type usageRecorder struct {
	write func(ctx context.Context, used map[string]time.Time) error
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time
}

func newUsageRecorder(write func(context.Context, map[string]time.Time) error, log *slog.Logger) *usageRecorder {
	return &usageRecorder{write: write, log: log, pending: make(map[string]time.Time)}
}

// Record notes that id was used at t.
func (u *usageRecorder) Record(id string, t time.Time) {
	u.mu.Lock()
	if t.After(u.pending[id]) {
		u.pending[id] = t
	}
	u.mu.Unlock()
}

// Flush writes what is pending. On failure the times are kept for the next
// flush (unless a newer use replaced them).
func (u *usageRecorder) Flush(ctx context.Context) error {
	u.mu.Lock()
	if len(u.pending) == 0 {
		u.mu.Unlock()
		return nil
	}
	batch := u.pending
	u.pending = make(map[string]time.Time, len(batch))
	u.mu.Unlock()

	err := u.write(ctx, batch)
	if err != nil {
		for id, t := range batch {
			u.Record(id, t)
		}
	}
	return err
}

// Run flushes every interval until ctx is done, then flushes once more.
func (u *usageRecorder) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := u.Flush(ctx); err != nil {
				u.log.WarnContext(ctx, "recording API token use", "err", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = u.Flush(fctx)
			cancel()
			return
		}
	}
}
