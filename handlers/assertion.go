package handlers

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/tokend/tokend/tokens"
)

// AssertionType is the only client_assertion_type tokend accepts (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Assertions verifies client assertions: JWTs from an issuer a client
// trusts. tokend's own tokens are verified locally (and must not be
// revoked); other issuers' through their discovery document and JWKS
// (foreignKey: fetched once for all concurrent callers, with a short
// timeout and a size limit, cached as the issuer says within bounds,
// failures cached too).
type Assertions struct {
	own     *tokens.Verifier
	issuer  string
	revoked func(context.Context, *tokens.Claims) (bool, error)
	client  *http.Client
	now     func() time.Time

	fetchTimeout time.Duration // for both requests of one fetch

	mu    sync.Mutex
	jwks  map[string]*jwksEntry // by issuer; only trusted issuers are fetched, so it stays small
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

// NewAssertions returns a verifier of client assertions. own verifies
// tokend's tokens (issuer issuer); revoked is tokend's revocation check for
// them. client fetches foreign issuers' keys (nil: a client with a 5s
// timeout).
func NewAssertions(own *tokens.Verifier, issuer string, revoked func(context.Context, *tokens.Claims) (bool, error), client *http.Client) *Assertions {
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	return &Assertions{own: own, issuer: strings.TrimSuffix(issuer, "/"), revoked: revoked, client: client,
		now: time.Now, fetchTimeout: jwksFetchTimeout, jwks: map[string]*jwksEntry{}}
}

// errAssertion is wrapped by every refusal; callers answer all of them alike.
var errAssertion = errors.New("invalid client assertion")

// Verify checks assertion against the issuers trusted (the client's
// assertion_issuers) and, when audiences is not empty (the client's
// assertion_audiences), that its aud names one of them; it returns the
// assertion's claims. A store failure while checking revocation of one of
// tokend's own tokens is returned as is (unavailable).
func (a *Assertions) Verify(ctx context.Context, assertion string, trusted, audiences []string) (map[string]any, error) {
	claims, err := a.verify(ctx, assertion, trusted)
	if err != nil || len(audiences) == 0 {
		return claims, err
	}
	aud, err := jwt.MapClaims(claims).GetAudience()
	if err != nil {
		return nil, fmt.Errorf("%w: aud: %w", errAssertion, err)
	}
	for _, want := range audiences {
		if slices.Contains(aud, want) {
			return claims, nil
		}
	}
	return nil, fmt.Errorf("%w: aud %q names none of %q", errAssertion, []string(aud), audiences)
}

func (a *Assertions) verify(ctx context.Context, assertion string, trusted []string) (map[string]any, error) {
	if len(assertion) > 8192 {
		return nil, fmt.Errorf("%w: too long", errAssertion)
	}
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, unverified); err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	iss, _ := unverified["iss"].(string)
	if iss == "" || !trustedIssuer(trusted, iss) {
		return nil, fmt.Errorf("%w: issuer %q not trusted by this client", errAssertion, iss)
	}
	if strings.TrimSuffix(iss, "/") == a.issuer {
		c, err := a.own.Verify(assertion)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errAssertion, err)
		}
		// Only a user's tokens speak for a user: an M2M token's sub is a
		// client id, which must never become an owner that could pass for a
		// user id (RFC 9700 §4.15.1).
		if c.Kind != tokens.KindUser && c.Kind != tokens.KindAPIToken {
			return nil, fmt.Errorf("%w: tokend token of kind %s", errAssertion, c.Kind)
		}
		if a.revoked != nil {
			revoked, err := a.revoked(ctx, c)
			if err != nil {
				return nil, err
			}
			if revoked {
				return nil, fmt.Errorf("%w: revoked", errAssertion)
			}
		}
		return unverified, nil // the signature is verified: these are the token's claims
	}
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{tokens.AlgEdDSA, tokens.AlgES256, tokens.AlgRS256}),
		jwt.WithIssuer(iss), jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(a.now))
	_, err := p.ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return a.foreignKey(ctx, iss, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	return claims, nil
}

func trustedIssuer(trusted []string, iss string) bool {
	for _, t := range trusted {
		if strings.TrimSuffix(t, "/") == strings.TrimSuffix(iss, "/") {
			return true
		}
	}
	return false
}

// foreignKey returns the key kid of issuer iss. Keys are cached for the
// issuer's Cache-Control max-age (held within 1 min–24 h; 5 min without
// one). An unknown kid refetches (for issuers that rotate keys) at most
// once a minute. A failed fetch is remembered for 30 s, during which no
// call fetches again, and the last keys fetched stay in use up to 24 h
// while refreshes fail. However many calls need a fetch at once, one
// fetch runs, with a 3 s timeout that no caller's cancellation cuts short.
func (a *Assertions) foreignKey(ctx context.Context, iss, kid string) (any, error) {
	a.mu.Lock()
	e := a.jwks[iss]
	a.mu.Unlock()
	now := a.now()
	if e == nil || !e.usable(now, kid) {
		failing := e != nil && !e.failed.IsZero() && now.Sub(e.failed) < jwksFailureTTL
		stale := e == nil || e.keys == nil || !now.Before(e.expires)
		unknownKid := e != nil && e.keys != nil && e.keys[kid] == nil && now.Sub(e.fetched) >= jwksUnknownKid
		if !failing && (stale || unknownKid) {
			e = a.refresh(ctx, iss)
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
func (a *Assertions) refresh(ctx context.Context, iss string) *jwksEntry {
	v, _, _ := a.fetch.Do(iss, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.fetchTimeout)
		defer cancel()
		keys, maxAge, err := a.fetchJWKS(fctx, iss)
		now := a.now()
		a.mu.Lock()
		defer a.mu.Unlock()
		next := &jwksEntry{}
		if err != nil {
			if old := a.jwks[iss]; old != nil {
				*next = *old
			}
			next.failed, next.err = now, err
		} else {
			next.keys, next.fetched, next.expires = keys, now, now.Add(maxAge)
		}
		a.jwks[iss] = next
		return next, nil
	})
	return v.(*jwksEntry)
}

const maxFetch = 1 << 20

// getJSON decodes the JSON at url (at most 1 MiB) and returns the
// response's Cache-Control max-age held within the cache's bounds.
func (a *Assertions) getJSON(ctx context.Context, url string, v any) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.client.Do(req)
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
func (a *Assertions) fetchJWKS(ctx context.Context, iss string) (map[string]any, time.Duration, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := a.getJSON(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, 0, err
	}
	if strings.TrimSuffix(disc.Issuer, "/") != strings.TrimSuffix(iss, "/") || disc.JWKSURI == "" {
		return nil, 0, fmt.Errorf("discovery document of %s names issuer %q, jwks_uri %q", iss, disc.Issuer, disc.JWKSURI)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	ttl, err := a.getJSON(ctx, disc.JWKSURI, &set)
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

// jwk is a public JSON Web Key (RFC 7517) of the kinds tokend verifies.
type jwk struct {
	Kty, Kid, Crv, X, Y, N, E, Use string
}

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
