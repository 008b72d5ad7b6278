package tokens

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every verification failure. The wrapped text says why, for logs only;
// callers should answer every failure alike.
var ErrInvalidToken = errors.New("invalid token")

// maxTokenLen bounds the work an unauthenticated caller can ask of Verify. tokend's tokens are well
// under 2 KiB, even with RS256.
const maxTokenLen = 8 << 10

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithLeeway sets the clock skew allowed on exp, nbf and iat (default 30s; negative counts as 0).
func WithLeeway(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.leeway = max(d, 0) }
}

// WithClock sets the function that tells the time (default time.Now), for tests.
func WithClock(now func() time.Time) VerifierOption {
	return func(v *Verifier) { v.now = now }
}

// WithCacheSize sets how many verified tokens the Verifier remembers (default 16,384; 0 turns the
// cache off). See Verify.
func WithCacheSize(n int) VerifierOption {
	return func(v *Verifier) { v.cacheSize = max(n, 0) }
}

// DefaultCacheSize is the number of verified tokens a Verifier remembers unless WithCacheSize says
// otherwise: at about 400 bytes an entry, some 6.5 MB when full.
const DefaultCacheSize = 16 << 10

// Verifier checks access tokens signed by any key of a KeySet. It is safe for concurrent use.
type Verifier struct {
	ks        *KeySet
	issuer    string
	leeway    time.Duration
	now       func() time.Time
	parser    *jwt.Parser
	keyfunc   jwt.Keyfunc
	cacheSize int
	cache     *verifiedCache
}

// NewVerifier returns a Verifier of tokens from issuer signed by a key of ks. An empty issuer makes
// every token fail: the issuer check is never skipped.
func NewVerifier(ks *KeySet, issuer string, opts ...VerifierOption) *Verifier {
	v := &Verifier{ks: ks, issuer: issuer, leeway: 30 * time.Second, cacheSize: DefaultCacheSize}
	for _, o := range opts {
		o(v)
	}
	if v.cacheSize > 0 {
		v.cache = newVerifiedCache(v.cacheSize)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{AlgEdDSA, AlgES256, AlgRS256}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithStrictDecoding(),
	}
	if v.now != nil {
		popts = append(popts, jwt.WithTimeFunc(v.now))
	}
	v.parser = jwt.NewParser(popts...)
	v.keyfunc = v.lookupKey
	return v
}

// Verify checks token and returns its claims. It refuses, with an error wrapping ErrInvalidToken, a
// token that is malformed or too long; whose alg is not EdDSA, ES256 or RS256 or not the alg of the
// kid's key; whose kid is missing or unknown; whose typ is not at+jwt (RFC 9068); that carries a
// crit header; whose signature does not match; whose iss is not the issuer; whose exp is missing or
// past, or nbf or iat in the future (beyond the leeway); whose kind is missing or unknown, or whose
// sub does not fit its kind.
//
// A token that passed is remembered (by its SHA-256) until its exp: the same bytes verified again
// skip the signature check, the one expensive step, and only exp is checked anew. That is safe
// because every other check depends only on the token's bytes and on the Verifier's keys and
// issuer; an entry remembered under an earlier list of keys (KeySet.Replace) is verified anew. Revocation is not Verify's business: callers check it on every use.
// Refused tokens are never remembered. The returned Claims are the caller's own copy.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if v.issuer == "" {
		return nil, fmt.Errorf("%w: verifier has no issuer", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if c, ok := v.cache.get(sum, v.ks.state.Load(), v.clock(), v.leeway); ok {
			return c, nil
		}
	}
	keys := v.ks.state.Load() // before the parse: a list replaced meanwhile makes the entry stale, not wrong
	c := new(Claims)
	if _, err := v.parser.ParseWithClaims(token, c, v.keyfunc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := checkClaims(c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if v.cache != nil {
		v.cache.put(sum, c, keys, v.clock())
	}
	return c, nil
}

func (v *Verifier) clock() time.Time {
	if v.now != nil {
		return v.now()
	}
	return time.Now()
}

// verifiedCache maps the SHA-256 of a verified token to its claims. It is split into shards, each
// under its own lock, and bounded: a full shard first drops its expired entries, then arbitrary ones.
type verifiedCache struct {
	perShard int
	shards   [16]verifiedShard
}

type verifiedShard struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedEntry
}

// verifiedEntry is a verified token's claims and the list of keys it was verified under.
type verifiedEntry struct {
	c    *Claims
	keys *keyState
}

func newVerifiedCache(size int) *verifiedCache {
	vc := &verifiedCache{perShard: max(size/len(verifiedCache{}.shards), 1)}
	for i := range vc.shards {
		vc.shards[i].m = make(map[[sha256.Size]byte]verifiedEntry)
	}
	return vc
}

// get returns a copy of the claims remembered for sum, if any, verified under keys and still within
// exp (plus leeway).
func (vc *verifiedCache) get(sum [sha256.Size]byte, keys *keyState, now time.Time, leeway time.Duration) (*Claims, bool) {
	sh := &vc.shards[sum[0]%uint8(len(vc.shards))]
	sh.mu.Lock()
	e, ok := sh.m[sum]
	c := e.c
	if ok && (e.keys != keys || !now.Before(c.ExpiresAt.Add(leeway))) { // jwt's own exp rule
		delete(sh.m, sum)
		ok = false
	}
	sh.mu.Unlock()
	if !ok {
		return nil, false
	}
	cp := *c
	return &cp, true
}

func (vc *verifiedCache) put(sum [sha256.Size]byte, c *Claims, keys *keyState, now time.Time) {
	cp := *c
	sh := &vc.shards[sum[0]%uint8(len(vc.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= vc.perShard {
		for k, old := range sh.m {
			if !now.Before(old.c.ExpiresAt.Time) || old.keys != keys {
				delete(sh.m, k)
			}
		}
		// Still full: drop an arbitrary quarter (Go's map iteration order is randomised).
		for k := range sh.m {
			if len(sh.m) < vc.perShard*3/4 {
				break
			}
			delete(sh.m, k)
		}
	}
	sh.m[sum] = verifiedEntry{&cp, keys}
}

// lookupKey is the jwt.Keyfunc: it checks the header and returns the public key named by kid. The
// parser has already refused algs outside the list.
func (v *Verifier) lookupKey(t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, typAccessToken) && !strings.EqualFold(typ, "application/"+typAccessToken) {
		return nil, fmt.Errorf("typ %q is not at+jwt", typ)
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("crit header not supported")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("kid missing")
	}
	k := v.ks.key(kid)
	if k == nil {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	if alg := t.Method.Alg(); alg != k.alg {
		return nil, fmt.Errorf("alg %s does not match kid %s (%s)", alg, kid, k.alg)
	}
	return k.pub, nil
}
