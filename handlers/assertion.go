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

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/config"
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
	used    AssertionStore
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

// AssertionStore remembers the foreign assertions accepted, so that each is
// accepted once (RFC 7523 §3: jti).
type AssertionStore interface {
	// UseAssertionID records (issuer, jti) until until: fresh is false
	// when it was recorded already.
	UseAssertionID(ctx context.Context, issuer, jti string, until time.Time) (fresh bool, err error)
}

type jwksEntry struct {
	keys    map[string]any // kid → public key; nil before the first successful fetch
	fetched time.Time      // last successful fetch
	expires time.Time      // fetched + the issuer's max-age, within bounds
	failed  time.Time      // last failed fetch since the last success (zero: none)
	err     error          // why it failed
}

// NewAssertions returns a verifier of client assertions. own verifies
// tokend's tokens (issuer issuer); revoked is tokend's revocation check for
// them; used remembers foreign assertions' ids. client fetches foreign
// issuers' keys (nil: a client with a 3s timeout).
func NewAssertions(own *tokens.Verifier, issuer string, revoked func(context.Context, *tokens.Claims) (bool, error),
	used AssertionStore, client *http.Client) *Assertions {
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	}
	return &Assertions{own: own, issuer: strings.TrimSuffix(issuer, "/"), revoked: revoked, used: used, client: client,
		now: time.Now, fetchTimeout: jwksFetchTimeout, jwks: map[string]*jwksEntry{}}
}

// errAssertion is wrapped by every refusal; callers answer all of them alike.
var errAssertion = errors.New("invalid client assertion")

// assertionLeeway is the clock skew allowed on a foreign assertion's exp.
const assertionLeeway = 30 * time.Second

// Asserted is who a verified client assertion speaks for.
type Asserted struct {
	authz.Principal
	// Claims are the assertion's claims (the M2M token's original_token_claims).
	Claims map[string]any
	// Issuer is the assertion's issuer (no trailing slash).
	Issuer string
	// SessionID and APITokenID name the session or API token of one of
	// tokend's own tokens, on which the M2M tokens it buys depend.
	SessionID, APITokenID string
}

// Verify checks a client assertion for client cl (API.md section 4; RFC
// 7523 §3): signed by an issuer the client trusts, unexpired, its aud naming
// tokend (its issuer or token endpoint) or one of the client's
// assertion_audiences, and allowed by the authorization table. tokend's own
// tokens must not be revoked (they speak for their user: a first-party
// session or an API token; a token delegated to a client or an M2M token
// never does); a foreign assertion must name its owner (the client's
// owner_claim), which is qualified by its issuer, and is accepted once per
// jti. A store failure is returned as is (unavailable); every refusal wraps
// errAssertion.
func (a *Assertions) Verify(ctx context.Context, assertion string, cl *config.Client) (*Asserted, error) {
	if len(assertion) > 8192 {
		return nil, fmt.Errorf("%w: too long", errAssertion)
	}
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, unverified); err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	iss, _ := unverified["iss"].(string)
	if iss == "" || !trustedIssuer(cl.AssertionIssuers, iss) {
		return nil, fmt.Errorf("%w: issuer %q not trusted by this client", errAssertion, iss)
	}
	var as *Asserted
	var err error
	if strings.TrimSuffix(iss, "/") == a.issuer {
		as, err = a.verifyOwn(ctx, assertion, unverified)
	} else {
		as, err = a.verifyForeign(ctx, assertion, iss, cl)
	}
	if err != nil {
		return nil, err
	}
	as.Issuer = strings.TrimSuffix(iss, "/")
	if err := a.checkAudience(as.Claims, cl.AssertionAudiences); err != nil {
		return nil, err
	}
	if err := authz.Authorize(authz.ClientAssertion, as.Principal, a.issuer); err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	if as.Kind == authz.Foreign {
		if err := a.useOnce(ctx, iss, as.Claims); err != nil {
			return nil, err
		}
	}
	return as, nil
}

// verifyOwn verifies one of tokend's own access tokens used as an assertion.
func (a *Assertions) verifyOwn(ctx context.Context, assertion string, claims map[string]any) (*Asserted, error) {
	c, err := a.own.Verify(assertion)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
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
	// The signature is verified: claims are the token's.
	return &Asserted{Principal: authz.FromClaims(c), Claims: claims, SessionID: c.SessionID, APITokenID: c.APITokenID}, nil
}

// verifyForeign verifies a trusted foreign issuer's assertion by its JWKS.
func (a *Assertions) verifyForeign(ctx context.Context, assertion, iss string, cl *config.Client) (*Asserted, error) {
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{tokens.AlgEdDSA, tokens.AlgES256, tokens.AlgRS256}),
		jwt.WithIssuer(iss), jwt.WithExpirationRequired(), jwt.WithLeeway(assertionLeeway), jwt.WithTimeFunc(a.now))
	_, err := p.ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return a.foreignKey(ctx, iss, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	owner, _ := claims[cl.OwnerClaimName()].(string)
	if owner == "" {
		return nil, fmt.Errorf("%w: no owner claim %q", errAssertion, cl.OwnerClaimName())
	}
	return &Asserted{Principal: authz.Principal{Kind: authz.Foreign, Owner: authz.ForeignOwner(iss, owner), ClientID: cl.ID},
		Claims: claims}, nil
}

// checkAudience requires the assertion's aud to name tokend — its issuer or
// token endpoint — or one of the client's extra accepted values.
func (a *Assertions) checkAudience(claims map[string]any, extra []string) error {
	aud, err := jwt.MapClaims(claims).GetAudience()
	if err != nil {
		return fmt.Errorf("%w: aud: %w", errAssertion, err)
	}
	accepted := append([]string{a.issuer, a.issuer + "/oauth/token"}, extra...)
	for _, got := range aud {
		if slices.Contains(accepted, strings.TrimSuffix(got, "/")) || slices.Contains(accepted, got) {
			return nil
		}
	}
	return fmt.Errorf("%w: aud %q names none of %q", errAssertion, []string(aud), accepted)
}

// maxAssertionLife bounds how far in the future a foreign assertion may
// expire (RFC 7523 §3 allows refusing "unreasonably far" ones): its jti is
// remembered that long.
const maxAssertionLife = 24 * time.Hour

// useOnce accepts a foreign assertion's jti once until it expires (plus the
// leeway), across every replica.
func (a *Assertions) useOnce(ctx context.Context, iss string, claims map[string]any) error {
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > 256 {
		return fmt.Errorf("%w: jti missing or longer than 256 bytes", errAssertion)
	}
	exp, err := jwt.MapClaims(claims).GetExpirationTime()
	if err != nil || exp == nil {
		return fmt.Errorf("%w: exp", errAssertion)
	}
	if exp.Sub(a.now()) > maxAssertionLife {
		return fmt.Errorf("%w: exp more than %s ahead", errAssertion, maxAssertionLife)
	}
	fresh, err := a.used.UseAssertionID(ctx, strings.TrimSuffix(iss, "/"), jti, exp.Add(assertionLeeway))
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: jti %q replayed", errAssertion, jti)
	}
	return nil
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
