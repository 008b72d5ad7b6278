package redisstore

import (
	"context"
	_ "embed"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed throttle_take.lua
	throttleTakeSrc    string
	throttleTakeScript = redis.NewScript(throttleTakeSrc)

	//go:embed throttle_forgive.lua
	throttleForgiveSrc    string
	throttleForgiveScript = redis.NewScript(throttleForgiveSrc)
)

// ThrottleTake counts one attempt against each key (for example
// "user:alice", "addr:10.0.0.1"; the store hashes them into key names, so
// user input never shapes a key) inside a fixed window starting at that
// key's first attempt, and reports whether every counter is still ≤ max.
// Counting before the password check means N parallel attempts cannot
// exceed the limit. Each counter is updated atomically (one script); the
// counters live in different slots and are pipelined, not one transaction.
func (s *Store) ThrottleTake(ctx context.Context, keys []string, max int, window time.Duration) (allowed bool, err error) {
	if len(keys) == 0 {
		return true, nil
	}
	if window < time.Millisecond {
		window = time.Millisecond
	}
	calls := make([]scriptCall, len(keys))
	for i, k := range keys {
		calls[i] = scriptCall{script: throttleTakeScript, keys: []string{s.keys.throttle(k)}, args: []any{window.Milliseconds()}}
	}
	cmds, err := s.runPipelined(ctx, calls)
	if err != nil {
		return false, wrap("throttle", err)
	}
	allowed = true
	for _, c := range cmds {
		if n, _ := c.(*redis.Cmd).Int64(); n > int64(max) {
			allowed = false
		}
	}
	return allowed, nil
}

// ThrottleForgive undoes a counted attempt after a successful login: it
// deletes the first key's counter (the username) and decrements the others
// (never below zero). Each counter is updated atomically; pipelined.
func (s *Store) ThrottleForgive(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(keys))
	for i, k := range keys {
		mode := "one"
		if i == 0 {
			mode = "all"
		}
		calls[i] = scriptCall{script: throttleForgiveScript, keys: []string{s.keys.throttle(k)}, args: []any{mode}}
	}
	_, err := s.runPipelined(ctx, calls)
	return wrap("throttle forgive", err)
}
