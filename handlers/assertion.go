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
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/tokens"
)

// AssertionType is the only client_assertion_type tokend accepts (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Assertions verifies client assertions: JWTs from an issuer a client
// trusts. tokend's own tokens are verified locally (and must not be
// revoked); other issuers' through their discovery document and JWKS,
// fetched with a timeout and a size limit and cached.
type Assertions struct {
	own     *tokens.Verifier
	issuer  string
	revoked func(context.Context, *tokens.Claims) (bool, error)
	client  *http.Client
	ttl     time.Duration
	now     func() time.Time

	mu   sync.Mutex
	jwks map[string]*jwksEntry // by issuer
}

type jwksEntry struct {
	keys    map[string]any // kid → public key
	fetched time.Time
}

// NewAssertions returns a verifier of client assertions. own verifies
// tokend's tokens (issuer issuer); revoked is tokend's revocation check for
// them. client fetches foreign issuers' keys (nil: a client with a 5s
// timeout).
func NewAssertions(own *tokens.Verifier, issuer string, revoked func(context.Context, *tokens.Claims) (bool, error), client *http.Client) *Assertions {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &Assertions{own: own, issuer: strings.TrimSuffix(issuer, "/"), revoked: revoked, client: client,
		ttl: 5 * time.Minute, now: time.Now, jwks: map[string]*jwksEntry{}}
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

// foreignKey returns the key kid of issuer iss, from the cache or fetched
// (once more when kid is unknown and the cache is older than a minute, for
// issuers that rotate keys).
func (a *Assertions) foreignKey(ctx context.Context, iss, kid string) (any, error) {
	a.mu.Lock()
	e := a.jwks[iss]
	a.mu.Unlock()
	now := a.now()
	if e == nil || now.Sub(e.fetched) > a.ttl || (e.keys[kid] == nil && now.Sub(e.fetched) > time.Minute) {
		keys, err := a.fetchJWKS(ctx, iss)
		if err != nil {
			return nil, err
		}
		e = &jwksEntry{keys: keys, fetched: now}
		a.mu.Lock()
		a.jwks[iss] = e
		a.mu.Unlock()
	}
	k := e.keys[kid]
	if k == nil {
		return nil, fmt.Errorf("no key %q at issuer %s", kid, iss)
	}
	return k, nil
}

const maxFetch = 1 << 20

func (a *Assertions) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxFetch)).Decode(v)
}

// fetchJWKS reads iss's discovery document and the JWKS it names.
func (a *Assertions) fetchJWKS(ctx context.Context, iss string) (map[string]any, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := a.getJSON(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if strings.TrimSuffix(disc.Issuer, "/") != strings.TrimSuffix(iss, "/") || disc.JWKSURI == "" {
		return nil, fmt.Errorf("discovery document of %s names issuer %q, jwks_uri %q", iss, disc.Issuer, disc.JWKSURI)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := a.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := map[string]any{}
	for _, k := range set.Keys {
		if pub, err := k.public(); err == nil && k.Kid != "" {
			keys[k.Kid] = pub
		}
	}
	return keys, nil
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
