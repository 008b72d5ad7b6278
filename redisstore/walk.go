package redisstore

import "context"

// The walkers are the one way a store method reads a collection too large
// for one reply: a cursor (ZSCAN, SSCAN) stepped through with the client
// directly, not through the batcher, because each step depends on the
// cursor the previous one returned and a walk must not hold a shared
// pipeline for its whole length. Each step's reply is bounded by count
// (a hint to Redis: a step may return a few more). Like SCAN, a member added
// or removed during the walk may or may not be seen; a member present
// throughout is seen once or, rarely, twice.

// walkSortedSet calls f with the members (not the scores) of the sorted set
// key, a step of about count at a time, until the walk ends or f fails. A
// failed step is wrapped with op; f's error is returned as it is.
func (s *Store) walkSortedSet(ctx context.Context, op, key string, count int64, f func(members []string) error) error {
	var cursor uint64
	for {
		pairs, next, err := s.rdb.ZScan(ctx, key, cursor, "", count).Result()
		if err != nil {
			return wrap(op, err)
		}
		members := make([]string, 0, len(pairs)/2)
		for i := 0; i < len(pairs); i += 2 {
			members = append(members, pairs[i])
		}
		if err := f(members); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// walkSet calls f with the members of the set key, a step of about count at
// a time, until the walk ends or f fails (errors as walkSortedSet's).
func (s *Store) walkSet(ctx context.Context, op, key string, count int64, f func(members []string) error) error {
	var cursor uint64
	for {
		members, next, err := s.rdb.SScan(ctx, key, cursor, "", count).Result()
		if err != nil {
			return wrap(op, err)
		}
		if err := f(members); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
