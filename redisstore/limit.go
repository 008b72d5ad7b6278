package redisstore

import (
	"context"
	_ "embed"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed limit_take.lua
	limitTakeSrc    string
	limitTakeScript = redis.NewScript(limitTakeSrc)

	//go:embed limit_forgive.lua
	limitForgiveSrc    string
	limitForgiveScript = redis.NewScript(limitForgiveSrc)
)

// Limit is one counter of the rate limiter: its name (hashed into the key,
// so user input never shapes a key) and the most attempts it allows within
// the window.
type Limit struct {
	Name string
	Max  int
}

// LimitGroup is counters taken together, atomically: they share a hash
// tag made from Tag (hashed), so one script updates them all.
type LimitGroup struct {
	Tag    string
	Limits []Limit
}

func (s *Store) limitKeys(g LimitGroup) []string {
	keys := make([]string, len(g.Limits))
	for i, l := range g.Limits {
		keys[i] = s.keys.limit(g.Tag, l.Name)
	}
	return keys
}

// LimitTake counts one attempt against every counter of each group, in
// fixed windows that start at a counter's first attempt (limit_take.lua).
// Within a group it is all or none: if any counter is full, none counts
// and the group's wait (until its last full counter's window ends) is
// returned in waits; 0 means the group allowed the attempt. Groups are
// independent scripts (each its own slot), pipelined in one round trip.
func (s *Store) LimitTake(ctx context.Context, window time.Duration, groups ...LimitGroup) (waits []time.Duration, err error) {
	window = max(window, time.Millisecond)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		args := make([]any, 1, 1+len(g.Limits))
		args[0] = window.Milliseconds()
		for _, l := range g.Limits {
			args = append(args, l.Max)
		}
		calls[i] = scriptCall{script: limitTakeScript, keys: s.limitKeys(g), args: args}
	}
	cmds, err := s.batch.run(ctx, calls...)
	if err != nil {
		return nil, wrap("rate limit", err)
	}
	waits = make([]time.Duration, len(groups))
	for i, c := range cmds {
		ms, err := c.(*redis.Cmd).Int64()
		if err != nil {
			return nil, wrap("rate limit", err)
		}
		waits[i] = time.Duration(ms) * time.Millisecond
	}
	return waits, nil
}

// LimitForgive takes back one attempt from every counter of each group
// (never below zero), one script per group, pipelined.
func (s *Store) LimitForgive(ctx context.Context, groups ...LimitGroup) error {
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: limitForgiveScript, keys: s.limitKeys(g)}
	}
	_, err := s.batch.run(ctx, calls...)
	return wrap("rate limit forgive", err)
}
