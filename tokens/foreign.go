package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// ForeignKeys verifies JWTs signed by other issuers, with the keys each
// publishes (its discovery document's jwks_uri). Keys are fetched once for
// all concurrent callers, with a short timeout and a size limit, and cached
// as the issuer says within bounds; failures are cached too. Which issuers
// to trust is the caller's decision: ForeignKeys fetches whatever it is
// asked for.
type ForeignKeys struct {
	client       *http.Client
	now          func() time.Time
	fetchTimeout time.Duration // for both requests of one fetch

	mu    sync.Mutex
	jwks  map[string]*jwksEntry // by issuer; callers ask only for trusted issuers, so it stays small
	fetch singleflight.Group    // by issuer
}

// Bounds of the foreign JWKS cache.
const (
	jwksDefaultTTL   = 5 * time.Minute  // when the issuer sends no max-age
	jwksMinTTL       = time.Minute      // the issuer's max-age is held within these bounds
	jwksMaxTTL       = 24 * time.Hour   // (and keys are used this long past a fetch while refreshes fail)
	jwksFailureTTL   = 30 * time.Second // a failed fetch is not retried before this
	jwksUnknownKid   = time.Minute      // an unknown kid refetches at most this often per issuer
	jwksFetchTimeout = 3 * time.Second
)

type jwksEntry struct {
	keys    map[string]any // kid → public key; nil before the first successful fetch
	fetched time.Time      // last successful fetch
	expires time.Time      // fetched + the issuer's max-age, within bounds
	failed  time.Time      // last failed fetch since the last success (zero: none)
	err     error          // why it failed
}

// NewForeignKeys returns an empty cache of foreign issuers' keys. client
// fetches them (nil: a client with a 3s timeout).
func NewForeignKeys(client *http.Client) *ForeignKeys {
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	return &ForeignKeys{client: client, now: time.Now, fetchTimeout: jwksFetchTimeout, jwks: map[string]*jwksEntry{}}
}

// Verify checks token's signature against the keys iss publishes (EdDSA,
// ES256 or RS256, chosen by its kid), its iss and its exp (required, with
// leeway for clock skew), and returns its claims.
func (f *ForeignKeys) Verify(ctx context.Context, token, iss string, leeway time.Duration) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{AlgEdDSA, AlgES256, AlgRS256}),
		jwt.WithIssuer(iss), jwt.WithExpirationRequired(), jwt.WithLeeway(leeway), jwt.WithTimeFunc(f.now))
	_, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return f.key(ctx, iss, kid)
	})
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// key returns the key kid of issuer iss. Keys are cached for the issuer's
// Cache-Control max-age (held within 1 min–24 h; 5 min without one). An
// unknown kid refetches (for issuers that rotate keys) at most once a
// minute. A failed fetch is remembered for 30 s, during which no call
// fetches again, and the last keys fetched stay in use up to 24 h while
// refreshes fail. However many calls need a fetch at once, one fetch runs,
// with a 3 s timeout that no caller's cancellation cuts short.
func (f *ForeignKeys) key(ctx context.Context, iss, kid string) (any, error) {
	f.mu.Lock()
	e := f.jwks[iss]
	f.mu.Unlock()
	now := f.now()
	if e == nil || !e.usable(now, kid) {
		failing := e != nil && !e.failed.IsZero() && now.Sub(e.failed) < jwksFailureTTL
		stale := e == nil || e.keys == nil || !now.Before(e.expires)
		unknownKid := e != nil && e.keys != nil && e.keys[kid] == nil && now.Sub(e.fetched) >= jwksUnknownKid
		if !failing && (stale || unknownKid) {
			e = f.refresh(ctx, iss)
		}
	}
	if e == nil || e.keys == nil || now.Sub(e.fetched) >= jwksMaxTTL {
		if e != nil && e.err != nil {
			return nil, fmt.Errorf("keys of issuer %s: %w", iss, e.err)
		}
		return nil, fmt.Errorf("no keys for issuer %s", iss)
	}
	k := e.keys[kid]
	if k == nil {
		return nil, fmt.Errorf("no key %q at issuer %s", kid, iss)
	}
	return k, nil
}

// usable reports whether e answers for kid without a fetch: fresh keys
// that hold kid.
func (e *jwksEntry) usable(now time.Time, kid string) bool {
	return e.keys != nil && now.Before(e.expires) && e.keys[kid] != nil
}

// refresh fetches iss's keys, once for every concurrent caller, and
// records the outcome: new keys, or the failure beside the keys it had.
func (f *ForeignKeys) refresh(ctx context.Context, iss string) *jwksEntry {
	v, _, _ := f.fetch.Do(iss, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.fetchTimeout)
		defer cancel()
		keys, maxAge, err := f.fetchJWKS(fctx, iss)
		now := f.now()
		f.mu.Lock()
		defer f.mu.Unlock()
		next := &jwksEntry{}
		if err != nil {
			if old := f.jwks[iss]; old != nil {
				*next = *old
			}
			next.failed, next.err = now, err
		} else {
			next.keys, next.fetched, next.expires = keys, now, now.Add(maxAge)
		}
		f.jwks[iss] = next
		return next, nil
	})
	return v.(*jwksEntry)
}

const maxFetch = 1 << 20

// getJSON decodes the JSON at url (at most 1 MiB) and returns the
// response's Cache-Control max-age held within the cache's bounds.
func (f *ForeignKeys) getJSON(ctx context.Context, url string, v any) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFetch)).Decode(v); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// cacheTTL is how long to keep a response with this Cache-Control:
// max-age within [jwksMinTTL, jwksMaxTTL] (no-store and no-cache: the
// minimum), jwksDefaultTTL without one.
func cacheTTL(cc string) time.Duration {
	ttl := jwksDefaultTTL
	for d := range strings.SplitSeq(cc, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(k) {
		case "no-store", "no-cache":
			return jwksMinTTL
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64); err == nil && n >= 0 {
				ttl = time.Duration(min(n, int64(jwksMaxTTL/time.Second))) * time.Second
			}
		}
	}
	return min(max(ttl, jwksMinTTL), jwksMaxTTL)
}

// fetchJWKS reads iss's discovery document and the JWKS it names; the keys
// are kept as long as the JWKS response's max-age says (within bounds).
func (f *ForeignKeys) fetchJWKS(ctx context.Context, iss string) (map[string]any, time.Duration, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := f.getJSON(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, 0, err
	}
	if strings.TrimSuffix(disc.Issuer, "/") != strings.TrimSuffix(iss, "/") || disc.JWKSURI == "" {
		return nil, 0, fmt.Errorf("discovery document of %s names issuer %q, jwks_uri %q", iss, disc.Issuer, disc.JWKSURI)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	ttl, err := f.getJSON(ctx, disc.JWKSURI, &set)
	if err != nil {
		return nil, 0, err
	}
	keys := map[string]any{}
	for _, k := range set.Keys {
		if pub, err := k.public(); err == nil && k.Kid != "" {
			keys[k.Kid] = pub
		}
	}
	return keys, ttl, nil
}

// public returns the key a foreign issuer published as k, of the kinds
// tokend verifies: Ed25519, P-256, RSA of at least 2048 bits.
func (k jwk) public() (any, error) {
	b := func(s string) []byte { v, _ := base64.RawURLEncoding.DecodeString(s); return v }
	switch {
	case k.Use != "" && k.Use != "sig":
		return nil, errors.New("not a signing key")
	case k.Kty == "OKP" && k.Crv == "Ed25519" && len(b(k.X)) == ed25519.PublicKeySize:
		return ed25519.PublicKey(b(k.X)), nil
	case k.Kty == "EC" && k.Crv == "P-256" && len(b(k.X)) == 32 && len(b(k.Y)) == 32:
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, b(k.X)...), b(k.Y)...))
	case k.Kty == "RSA":
		n, e := new(big.Int).SetBytes(b(k.N)), new(big.Int).SetBytes(b(k.E))
		if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 {
			return nil, errors.New("weak RSA key")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	}
	return nil, fmt.Errorf("unsupported key kty %q crv %q", k.Kty, k.Crv)
}
