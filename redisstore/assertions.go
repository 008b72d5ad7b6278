package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// UseAssertionID records that the client assertion of issuer with id jti
// was accepted, until it expires: fresh is true the first time, false for a
// replay (one SET NX, so that of concurrent uses on any replica exactly one
// is fresh). until must be in the future.
func (s *Store) UseAssertionID(ctx context.Context, issuer, jti string, until time.Time) (fresh bool, err error) {
	if !until.After(time.Now()) {
		return false, nil
	}
	_, err = doWrite(ctx, s, func(p redis.Pipeliner) *redis.StatusCmd {
		return p.SetArgs(ctx, s.keys.assertionID(issuer, jti), "1", redis.SetArgs{Mode: "NX", ExpireAt: until})
	})
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, wrap("record client assertion", err)
	}
	return true, nil
}
