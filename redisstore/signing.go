package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed signing_swap.lua
	signingSwapSrc    string
	signingSwapScript = redis.NewScript(signingSwapSrc)
)

// SigningRing is the shared signing-key ring as stored: a version that
// every replacement increments, and an opaque document (the keyring
// package's JSON, its private keys sealed under the key-encryption key,
// which Redis never sees).
type SigningRing struct {
	Version int64
	Doc     []byte
}

// SigningRing reads the ring; a ring never written is version 0 with no
// document.
func (s *Store) SigningRing(ctx context.Context) (SigningRing, error) {
	cmd, err := do(ctx, s, func(p redis.Pipeliner) *redis.SliceCmd { return p.HMGet(ctx, s.keys.signingRing(), "version", "doc") })
	if err != nil {
		return SigningRing{}, wrap("read signing keys", err)
	}
	res := cmd.Val()
	var r SigningRing
	if v, ok := res[0].(string); ok {
		if r.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return SigningRing{}, errors.New("redisstore: signing keys: bad version " + strconv.Quote(v))
		}
	}
	if d, ok := res[1].(string); ok {
		r.Doc = []byte(d)
	}
	return r, nil
}

// SwapSigningRing replaces the ring read at version with doc, and returns
// the new version; ErrConflict when it was replaced since (read it again).
// Atomic (one script): of replicas swapping from one version at once,
// exactly one succeeds. The write is durable as a revocation is (it waits
// for replicas): a rotation lost in a failover would unpublish a key
// already announced.
func (s *Store) SwapSigningRing(ctx context.Context, version int64, doc []byte) (int64, error) {
	n, err := s.run(ctx, signingSwapScript, []string{s.keys.signingRing()}, strconv.FormatInt(version, 10), doc).Int64()
	if err != nil {
		return 0, wrap("replace signing keys", err)
	}
	if n == 0 {
		return 0, ErrConflict
	}
	return n, nil
}
