package redisstore

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// ErrRefused: a store call was made for a request whose precheck refused it
// (its bearer token was revoked); the call's results were dropped.
var ErrRefused = errors.New("redisstore: request refused by its precheck")

// Precheck is a read that decides whether a request may go on (is its bearer
// token revoked?) and that can ride along with the request's own first read
// instead of costing a round trip of its own before the request starts.
//
// A request's prechecks form its Gate, which its handler passes explicitly
// to the store calls that accept one (GetM2MTokens, ListM2MTokens). The
// first read-only call sends them in its own pipeline and returns
// ErrRefused, its results dropped, when one refuses. A call that writes
// waits for their verdict before it is sent, so a refused request changes
// nothing in Redis. Settle returns the verdict, running the prechecks no
// call has carried yet.
//
// A Precheck is settled once and is then only read; it is safe for
// concurrent use.
type Precheck struct {
	store  *Store
	call   scriptCall                      // a read-only command; none: verdict is fixed
	refuse func(redis.Cmder) (bool, error) // the verdict from the command's reply

	claimed atomic.Bool   // a sender has taken it: it alone settles it
	done    chan struct{} // closed once refused and err are set
	refused bool
	err     error
}

func (s *Store) precheck(queue func(p redis.Pipeliner) redis.Cmder, refuse func(redis.Cmder) (bool, error)) *Precheck {
	return &Precheck{store: s, call: command(queue), refuse: refuse, done: make(chan struct{})}
}

// refusedPrecheck is a precheck whose verdict needs no Redis (a malformed id).
func (s *Store) refusedPrecheck() *Precheck {
	p := &Precheck{store: s, done: make(chan struct{})}
	p.claimed.Store(true)
	p.finish(nil, nil)
	return p
}

// finish records the verdict from c, the reply to p's command, or err when
// the command got no reply.
func (p *Precheck) finish(c redis.Cmder, err error) {
	switch {
	case p.call.cmd == nil:
		p.refused = true
	case c == nil: // no reply: never a pass
		if err == nil {
			err = redis.ErrClosed
		}
		p.err = wrap("precheck", err)
	default:
		p.refused, p.err = p.refuse(c)
		if p.err != nil {
			p.refused = false
		}
	}
	close(p.done)
}

// wait returns p's verdict once its sender has it.
func (p *Precheck) wait(ctx context.Context) (bool, error) {
	select {
	case <-p.done:
		return p.refused, p.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Gate is the prechecks of one request (see Precheck); nil lets every call
// through.
type Gate []*Precheck

// Settle returns the verdict of checks: refused when any refuses, or the
// first error reaching Redis. The checks no store call has carried yet are
// sent together, in one pipeline shared with other requests.
func Settle(ctx context.Context, checks ...*Precheck) (refused bool, err error) {
	if mine := claim(checks); len(mine) > 0 {
		calls := make([]scriptCall, len(mine))
		for i, p := range mine {
			calls[i] = p.call
		}
		out, err := mine[0].store.batch.send(ctx, calls)
		finishAll(mine, out, err)
	}
	return verdict(ctx, checks)
}

// claim takes the checks no sender has taken yet: the caller sends them and
// must finish every one.
func claim(checks []*Precheck) []*Precheck {
	var mine []*Precheck
	for _, p := range checks {
		if p.claimed.CompareAndSwap(false, true) {
			mine = append(mine, p)
		}
	}
	return mine
}

// finishAll settles the claimed checks from out, their replies in order
// (nil when the pipeline got no answer; then err says why).
func finishAll(checks []*Precheck, out []redis.Cmder, err error) {
	for i, p := range checks {
		if out == nil {
			p.finish(nil, err)
		} else {
			p.finish(out[i], nil)
		}
	}
}

func verdict(ctx context.Context, checks []*Precheck) (bool, error) {
	var first error
	for _, p := range checks {
		refused, err := p.wait(ctx)
		if refused {
			return true, nil
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return false, first
}

// M2MCheck is the precheck of an M2M access token: refused when its record
// is blacklisted or missing (one HGET). A missing record is refused, not
// passed: a token whose state Redis lost must never become good again.
func (s *Store) M2MCheck(owner, id string) *Precheck {
	if owner == "" || !validID(id) {
		return s.refusedPrecheck()
	}
	key := s.keys.m2mToken(owner, id)
	return s.precheck(func(p redis.Pipeliner) redis.Cmder { return p.HGet(context.Background(), key, "bl") },
		func(c redis.Cmder) (bool, error) {
			if err := wrap("check M2M token", c.Err()); err != nil {
				if errors.Is(err, ErrNotFound) {
					return true, nil
				}
				return false, err
			}
			return c.(*redis.StringCmd).Val() != "0", nil
		})
}

// SessionCheck is the precheck of a token issued in a session: refused
// when its refresh-token family is gone or revoked (one HGET).
func (s *Store) SessionCheck(familyID string) *Precheck {
	if !validFamily(familyID) {
		return s.refusedPrecheck()
	}
	key := s.keys.family(familyID)
	return s.precheck(func(p redis.Pipeliner) redis.Cmder { return p.HGet(context.Background(), key, "revoked") },
		func(c redis.Cmder) (bool, error) {
			if err := wrap("family active", c.Err()); err != nil {
				if errors.Is(err, ErrNotFound) {
					return true, nil
				}
				return false, err
			}
			return c.(*redis.StringCmd).Val() != "0", nil
		})
}

// APITokenCheck is the precheck of a token minted from an API token:
// refused once the API token is deleted or expired (one EXISTS).
func (s *Store) APITokenCheck(id string) *Precheck {
	if !validID(id) {
		return s.refusedPrecheck()
	}
	key := s.keys.apiToken(id)
	return s.precheck(func(p redis.Pipeliner) redis.Cmder { return p.Exists(context.Background(), key) },
		func(c redis.Cmder) (bool, error) {
			if err := c.Err(); err != nil {
				return false, wrap("API token active", err)
			}
			return c.(*redis.IntCmd).Val() != 1, nil
		})
}
