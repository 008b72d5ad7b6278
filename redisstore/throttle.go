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
// "user:alice", "addr:10.0.0.1"; hashed into key names) in a fixed window
// starting at the key's first attempt, and reports whether every counter is
// still ≤ max. Counting before the password check means N parallel attempts
// cannot exceed the limit. Each counter is one atomic script; the keys live
// in different slots and are pipelined.
func (s *Store) ThrottleTake(ctx context.Context, names []string, max int, window time.Duration) (bool, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range names {
			// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT,
			// and the script is a few bytes.
			throttleTakeScript.Eval(ctx, p, []string{s.keys.throttle(n)}, window.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return false, wrap("throttle", err)
	}
	allowed := true
	for _, c := range cmds {
		if n, _ := c.(*redis.Cmd).Int64(); n > int64(max) {
			allowed = false
		}
	}
	return allowed, nil
}

// ThrottleForgive undoes a counted attempt after a successful login: the
// first key's counter (the username) is deleted, the others decremented.
func (s *Store) ThrottleForgive(ctx context.Context, names []string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			if i == 0 {
				p.Del(ctx, s.keys.throttle(n))
				continue
			}
			throttleForgiveScript.Eval(ctx, p, []string{s.keys.throttle(n)})
		}
		return nil
	})
	return wrap("throttle forgive", err)
}
