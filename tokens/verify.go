package tokens

import (
	"errors"
	"fmt"
	"strings"
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

// Verifier checks access tokens signed by any key of a KeySet. It is safe for concurrent use.
type Verifier struct {
	ks      *KeySet
	issuer  string
	leeway  time.Duration
	now     func() time.Time
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
}

// NewVerifier returns a Verifier of tokens from issuer signed by a key of ks. An empty issuer makes
// every token fail: the issuer check is never skipped.
func NewVerifier(ks *KeySet, issuer string, opts ...VerifierOption) *Verifier {
	v := &Verifier{ks: ks, issuer: issuer, leeway: 30 * time.Second}
	for _, o := range opts {
		o(v)
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
func (v *Verifier) Verify(token string) (*Claims, error) {
	if v.issuer == "" {
		return nil, fmt.Errorf("%w: verifier has no issuer", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	c := new(Claims)
	if _, err := v.parser.ParseWithClaims(token, c, v.keyfunc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := checkClaims(c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
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
