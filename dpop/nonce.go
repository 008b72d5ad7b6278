package dpop

import (
	"context"
	"crypto/subtle"
	"sync"
	"time"
)

// NonceStore keeps the fleet's DPoP nonces: the current one and the one before it. Rotate
// returns them, first replacing the current nonce with fresh (and keeping the old one as the
// previous) when the current one is older than every; one replica rotates, all see it.
type NonceStore interface {
	RotateDPoPNonce(ctx context.Context, every time.Duration, fresh string) (current, previous string, err error)
}

// Nonces are the server nonces of RFC 9449 §8, shared by the fleet through a NonceStore: a proof
// must carry the current nonce or the previous one. Each replica remembers the pair for a short
// while (a tenth of the rotation period, at most 5s) and asks the store again at once, at most
// every 100ms, when a proof brings a nonce it does not know (another replica rotated first).
type Nonces struct {
	store NonceStore
	every time.Duration
	now   func() time.Time
	fresh func() string

	mu        sync.Mutex
	cur, prev string
	fetched   time.Time
}

// NewNonces returns nonces kept in store, rotated every d.
func NewNonces(store NonceStore, every time.Duration) *Nonces {
	return &Nonces{store: store, every: every, now: time.Now, fresh: newNonce}
}

func newNonce() string { return randomB64(16) }

func (n *Nonces) cacheFor() time.Duration { return min(n.every/10, 5*time.Second) }

// Current returns the nonce to hand out now.
func (n *Nonces) Current(ctx context.Context) (string, error) {
	cur, _, err := n.pair(ctx, false)
	return cur, err
}

// pair returns the current and previous nonce, from memory when fresh enough (or, with force,
// when fetched in the last 100ms).
func (n *Nonces) pair(ctx context.Context, force bool) (string, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	age := n.now().Sub(n.fetched)
	if n.cur != "" && (age < n.cacheFor() && !force || force && age < 100*time.Millisecond) {
		return n.cur, n.prev, nil
	}
	cur, prev, err := n.store.RotateDPoPNonce(ctx, n.every, n.fresh())
	if err != nil {
		return "", "", err
	}
	n.cur, n.prev, n.fetched = cur, prev, n.now()
	return cur, prev, nil
}

// check accepts nonce if it is the current or previous one; otherwise a use_dpop_nonce *Error
// carrying the current nonce.
func (n *Nonces) check(ctx context.Context, nonce string) error {
	for _, force := range []bool{false, true} {
		cur, prev, err := n.pair(ctx, force)
		if err != nil {
			return err
		}
		if nonce != "" && (eq(nonce, cur) || eq(nonce, prev)) {
			return nil
		}
		if nonce == "" {
			return &Error{Code: CodeUseNonce, Description: "a DPoP nonce is required", Nonce: cur}
		}
	}
	cur, _, _ := n.pair(ctx, false)
	return &Error{Code: CodeUseNonce, Description: "the DPoP nonce is stale", Nonce: cur}
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
