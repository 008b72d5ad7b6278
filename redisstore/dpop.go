package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed dpop_nonce.lua
	dpopNonceSrc    string
	dpopNonceScript = redis.NewScript(dpopNonceSrc)
)

// DPoPProofCheck is the precheck that records a DPoP proof (dpop.Proof.ReplayID) for ttl: refused
// when the record exists, that is when the proof was presented before to any replica (SET NX PX,
// atomic). It is the one precheck that writes: spending a proof changes nothing else, so it may
// ride along with a request's first read like the revocation checks, and a request refused for
// another reason has spent its proof all the same (a proof is good for one call).
func (s *Store) DPoPProofCheck(id string, ttl time.Duration) *Precheck {
	if len(id) != 43 || !base64url(id) || ttl < time.Millisecond {
		return s.refusedPrecheck()
	}
	key := s.keys.dpopProof(id)
	return s.precheck(func(p redis.Pipeliner) redis.Cmder { return p.SetNX(context.Background(), key, "1", ttl) },
		func(c redis.Cmder) (bool, error) {
			if err := c.Err(); err != nil {
				return false, wrap("record DPoP proof", err)
			}
			return !c.(*redis.BoolCmd).Val(), nil
		})
}

// RecordDPoPProof records a DPoP proof as DPoPProofCheck does, on its own: replayed is true when
// the proof was presented before.
func (s *Store) RecordDPoPProof(ctx context.Context, id string, ttl time.Duration) (replayed bool, err error) {
	return Settle(ctx, s.DPoPProofCheck(id, ttl))
}

// Refused reports p's verdict once settled: whether p refused its request. False while unsettled
// or when it failed to reach Redis.
func (p *Precheck) Refused() bool {
	select {
	case <-p.done:
		return p.refused
	default:
		return false
	}
}

// RotateDPoPNonce returns the fleet's current and previous DPoP nonce, replacing the current one
// with fresh first when it is every or more old (one script; Redis' clock).
func (s *Store) RotateDPoPNonce(ctx context.Context, every time.Duration, fresh string) (current, previous string, err error) {
	if every < time.Millisecond || fresh == "" {
		return "", "", errors.New("redisstore: DPoP nonce: bad period or empty nonce")
	}
	res, err := s.run(ctx, dpopNonceScript, []string{s.keys.dpopNonce()}, every.Milliseconds(), fresh).StringSlice()
	if err != nil {
		return "", "", wrap("rotate DPoP nonce", err)
	}
	if len(res) != 2 {
		return "", "", fmt.Errorf("redisstore: rotate DPoP nonce: unexpected script result %v", res)
	}
	return res[0], res[1], nil
}
