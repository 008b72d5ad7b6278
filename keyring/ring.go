package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// Store is what the ring needs of Redis (redisstore.Store).
type Store interface {
	SigningRing(ctx context.Context) (redisstore.SigningRing, error)
	SwapSigningRing(ctx context.Context, version int64, doc []byte) (int64, error)
}

// Key states (Entry.State).
const (
	StateNext    = "next"
	StateActive  = "active"
	StateRetired = "retired"
	StateRemoved = "removed" // past Removes: no longer published, left for the next write to drop
)

// ErrPending: a rotation was asked for while the previous one's key is
// still waiting to sign (state next). Rotating again would publish a key
// that verifiers may not have fetched yet.
var ErrPending = errors.New("a new key is already published and waiting to sign")

// Entry is one key of the ring. Times are Unix seconds.
type Entry struct {
	KID       string `json:"kid"`
	Alg       string `json:"alg"`
	Sealed    []byte `json:"sealed"` // PEM private key, sealed under the KEK with the kid as additional data
	Published int64  `json:"published"`
	Activates int64  `json:"activates"`
	Retires   int64  `json:"retires,omitempty"` // when the next key activates; 0 while none is published
	Removes   int64  `json:"removes,omitempty"` // Retires plus the longest token lifetime
}

// State is the entry's state at now.
func (e Entry) State(now time.Time) string {
	t := now.Unix()
	switch {
	case t < e.Activates:
		return StateNext
	case e.Removes != 0 && t >= e.Removes:
		return StateRemoved
	case e.Retires != 0 && t >= e.Retires:
		return StateRetired
	}
	return StateActive
}

// doc is the ring as stored.
type doc struct {
	KEKID string  `json:"kek_id"`
	Keys  []Entry `json:"keys"`
}

// Options configure a Ring.
type Options struct {
	KEK         *KEK
	Alg         string        // algorithm of new keys (tokens.AlgEdDSA…)
	RotateEvery time.Duration // how long a key signs before the next one takes over
	// Lead is how long a new key is published before it signs: at least the
	// JWKS max-age plus PollEvery and some margin.
	Lead time.Duration
	// TokenLifetime is the longest a token signed by a key may be accepted
	// (the longest lifetime tokend issues, plus the verifiers' leeway): a
	// retired key stays published that long.
	TokenLifetime time.Duration
	PollEvery     time.Duration // how often every replica reads the ring
	Log           *slog.Logger
	Now           func() time.Time // nil: time.Now
}

// Ring is one replica's view of the shared signing keys, and its share of
// rotating them. Keys returns the tokens.KeySet it keeps current.
type Ring struct {
	store Store
	opt   Options
	keys  *tokens.KeySet

	mu      sync.Mutex
	version int64
	doc     doc
	opened  map[string]*tokens.Key // unsealed keys by kid
	kids    []string               // the key set's kids as last applied, signer first
}

// Open reads the ring, creating its first key (active at once: nothing can
// have cached a JWKS without it) when there is none, and returns a Ring
// whose key set signs with the active key and publishes every key not yet
// removed.
func Open(ctx context.Context, store Store, opt Options) (*Ring, error) {
	if opt.KEK == nil {
		return nil, errors.New("keyring: no key-encryption key")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	r := &Ring{store: store, opt: opt, opened: map[string]*tokens.Key{}}
	if err := r.read(ctx); err != nil {
		return nil, err
	}
	if len(r.doc.Keys) == 0 {
		if _, err := r.rotate(ctx, "first key", true); err != nil && !errors.Is(err, ErrPending) {
			return nil, err
		}
	}
	if err := r.apply(); err != nil {
		return nil, err
	}
	return r, nil
}

// Keys is the key set the ring keeps current.
func (r *Ring) Keys() *tokens.KeySet { return r.keys }

// Run reads the ring every PollEvery until ctx is done: it applies what
// another replica changed, switches signer when a key's time comes, drops
// removed keys, and rotates when a rotation is due. Failures are logged and
// tried again at the next tick; the keys in use stay as they were.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.opt.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Tick(ctx); err != nil {
				r.opt.Log.WarnContext(ctx, "signing keys: could not read or rotate the ring in Redis; the keys in use stay", "err", err)
			}
		}
	}
}

// Tick is one step of Run.
func (r *Ring) Tick(ctx context.Context) error {
	if err := r.read(ctx); err != nil {
		return err
	}
	if r.due() {
		if _, err := r.rotate(ctx, "scheduled", false); err != nil && !errors.Is(err, ErrPending) {
			return err
		}
	} else if r.removable() {
		r.prune(ctx)
	}
	return r.apply()
}

// Rotate publishes a new key now and makes it sign Lead later; the key
// signing now retires then. ErrPending when a key is already waiting.
func (r *Ring) Rotate(ctx context.Context) (Entry, error) {
	e, err := r.rotate(ctx, "on demand", true)
	if err != nil {
		return e, err
	}
	return e, r.apply()
}

// List returns the ring's keys, oldest first.
func (r *Ring) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.doc.Keys)
}

// read loads the ring from Redis and unseals keys not seen before.
func (r *Ring) read(ctx context.Context) error {
	ring, err := r.store.SigningRing(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ring.Version == r.version && ring.Version != 0 {
		return nil
	}
	var d doc
	if ring.Version != 0 {
		if err := json.Unmarshal(ring.Doc, &d); err != nil {
			return fmt.Errorf("keyring: ring in Redis: %w", err)
		}
		if d.KEKID != r.opt.KEK.ID() {
			return fmt.Errorf("keyring: the keys in Redis were sealed with key-encryption key %s; this process has %s (every replica needs the same signing.kek_file or TOKEND_SIGNING_KEK)", d.KEKID, r.opt.KEK.ID())
		}
	}
	for _, e := range d.Keys {
		if r.opened[e.KID] != nil {
			continue
		}
		k, err := r.unseal(e)
		if err != nil {
			return err
		}
		r.opened[e.KID] = k
	}
	r.version, r.doc = ring.Version, d
	return nil
}

func (r *Ring) unseal(e Entry) (*tokens.Key, error) {
	plain, err := r.opt.KEK.open(e.KID, e.Sealed)
	if err != nil {
		return nil, fmt.Errorf("keyring: key %s: %w", e.KID, err)
	}
	k, err := tokens.ParseKeyPEM(plain)
	if err != nil {
		return nil, fmt.Errorf("keyring: key %s: %w", e.KID, err)
	}
	if k.ID() != e.KID {
		return nil, fmt.Errorf("keyring: key %s unseals to a key with kid %s", e.KID, k.ID())
	}
	return k, nil
}

// apply makes the key set sign with the active key and publish every key
// that is not removed, when that differs from what it holds.
func (r *Ring) apply() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opt.Now()
	var signer *Entry
	var rest []*tokens.Key
	for i := range r.doc.Keys {
		e := &r.doc.Keys[i]
		switch e.State(now) {
		case StateActive:
			if signer == nil || e.Activates > signer.Activates {
				if signer != nil {
					rest = append(rest, r.opened[signer.KID])
				}
				signer = e
				continue
			}
			rest = append(rest, r.opened[e.KID])
		case StateNext, StateRetired:
			rest = append(rest, r.opened[e.KID])
		}
	}
	if signer == nil {
		return errors.New("keyring: no key in the ring is active")
	}
	keys := append([]*tokens.Key{r.opened[signer.KID]}, rest...)
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.ID()
	}
	if slices.Equal(kids, r.kids) {
		return nil
	}
	if r.keys == nil {
		ks, err := tokens.NewKeySet(keys...)
		if err != nil {
			return err
		}
		r.keys = ks
	} else if err := r.keys.Replace(keys...); err != nil {
		return err
	}
	if r.kids != nil && kids[0] != r.kids[0] {
		r.opt.Log.Info("signing key activated", "event", "key.activated", "kid", kids[0])
	}
	r.kids = kids
	return nil
}

// due reports whether a scheduled rotation is due: no key is waiting, and
// the newest key has signed for RotateEvery less Lead (so that the next one
// signs when RotateEvery has passed).
func (r *Ring) due() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opt.Now()
	var newest *Entry
	for i := range r.doc.Keys {
		e := &r.doc.Keys[i]
		if e.State(now) == StateNext {
			return false
		}
		if newest == nil || e.Activates > newest.Activates {
			newest = e
		}
	}
	if newest == nil {
		return true
	}
	return !now.Before(time.Unix(newest.Activates, 0).Add(r.opt.RotateEvery - r.opt.Lead))
}

// removable reports whether the ring holds a key past its Removes.
func (r *Ring) removable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opt.Now()
	return slices.ContainsFunc(r.doc.Keys, func(e Entry) bool { return e.State(now) == StateRemoved })
}

// prune drops removed keys from the ring in Redis. Losing the race to
// another replica is fine: it wrote the same or more.
func (r *Ring) prune(ctx context.Context) {
	r.mu.Lock()
	now := r.opt.Now()
	d := doc{KEKID: r.doc.KEKID}
	var removed []string
	for _, e := range r.doc.Keys {
		if e.State(now) != StateRemoved {
			d.Keys = append(d.Keys, e)
		} else {
			removed = append(removed, e.KID)
		}
	}
	version := r.version
	r.mu.Unlock()
	_, err := r.swap(ctx, version, d)
	switch {
	case errors.Is(err, redisstore.ErrConflict): // another replica wrote first
	case err != nil:
		r.opt.Log.WarnContext(ctx, "signing keys: could not drop removed keys", "err", err)
	default:
		for _, kid := range removed {
			r.opt.Log.Info("signing key removed", "event", "key.removed", "kid", kid)
		}
	}
}

// rotate adds a new key to the ring in one compare-and-set, retrying on a
// lost race after reading the winner's ring. A scheduled rotation (force
// false) that is no longer due after such a read does nothing.
func (r *Ring) rotate(ctx context.Context, reason string, force bool) (Entry, error) {
	for range 5 {
		if !force && !r.due() {
			return Entry{}, nil
		}
		r.mu.Lock()
		now := r.opt.Now()
		d := doc{KEKID: r.opt.KEK.ID()}
		for _, e := range r.doc.Keys {
			if e.State(now) == StateNext {
				r.mu.Unlock()
				return e, fmt.Errorf("%w: %s signs from %s", ErrPending, e.KID, time.Unix(e.Activates, 0).UTC().Format(time.RFC3339))
			}
			if e.State(now) != StateRemoved {
				d.Keys = append(d.Keys, e)
			}
		}
		version := r.version
		r.mu.Unlock()

		k, err := tokens.GenerateKey(r.opt.Alg)
		if err != nil {
			return Entry{}, fmt.Errorf("keyring: %w", err)
		}
		pem, err := k.MarshalPEM()
		if err != nil {
			return Entry{}, fmt.Errorf("keyring: %w", err)
		}
		sealed, err := r.opt.KEK.seal(k.ID(), pem)
		if err != nil {
			return Entry{}, fmt.Errorf("keyring: seal: %w", err)
		}
		e := Entry{KID: k.ID(), Alg: k.Alg(), Sealed: sealed, Published: now.Unix(), Activates: now.Add(r.opt.Lead).Unix()}
		if len(d.Keys) == 0 {
			e.Activates = now.Unix() // the first key: nothing to wait for
		}
		for i := range d.Keys {
			if d.Keys[i].Retires == 0 {
				d.Keys[i].Retires = e.Activates
				d.Keys[i].Removes = time.Unix(e.Activates, 0).Add(r.opt.TokenLifetime).Unix()
			}
		}
		d.Keys = append(d.Keys, e)
		v, err := r.swap(ctx, version, d)
		if errors.Is(err, redisstore.ErrConflict) {
			if err := r.read(ctx); err != nil {
				return Entry{}, err
			}
			if version == 0 && len(r.List()) > 0 {
				return Entry{}, nil // another replica created the first key
			}
			continue // a scheduled rotation checks due again; one on demand finds the winner's key pending
		}
		if err != nil {
			return Entry{}, err
		}
		r.mu.Lock()
		r.opened[e.KID] = k
		r.version, r.doc = v, d
		r.mu.Unlock()
		r.opt.Log.Info("signing key rotated", "event", "key.rotated", "kid", e.KID, "alg", e.Alg, "reason", reason,
			"activates", time.Unix(e.Activates, 0).UTC().Format(time.RFC3339))
		return e, nil
	}
	return Entry{}, errors.New("keyring: the ring kept changing under a rotation; try again")
}

func (r *Ring) swap(ctx context.Context, version int64, d doc) (int64, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	return r.store.SwapSigningRing(ctx, version, b)
}

// Read returns the keys of the ring in Redis, oldest first, without
// unsealing them (no key-encryption key needed), and the id of the KEK
// that sealed them.
func Read(ctx context.Context, store Store) ([]Entry, string, error) {
	ring, err := store.SigningRing(ctx)
	if err != nil || ring.Version == 0 {
		return nil, "", err
	}
	var d doc
	if err := json.Unmarshal(ring.Doc, &d); err != nil {
		return nil, "", fmt.Errorf("keyring: ring in Redis: %w", err)
	}
	return d.Keys, d.KEKID, nil
}
