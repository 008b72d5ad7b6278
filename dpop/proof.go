package dpop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Algs are the proof signature algorithms tokend accepts (dpop_signing_alg_values_supported):
// asymmetric only, never "none" nor an HMAC (RFC 9449 §4.3 step 5).
var Algs = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}

var methods = map[string]jwt.SigningMethod{
	"ES256": jwt.SigningMethodES256,
	"ES384": jwt.SigningMethodES384,
	"EdDSA": jwt.SigningMethodEdDSA,
	"RS256": jwt.SigningMethodRS256,
	"PS256": jwt.SigningMethodPS256,
}

// Header names. gRPC clients send the proof as "dpop" metadata, which is the same HTTP/2 header.
const (
	ProofHeader = "DPoP"
	NonceHeader = "DPoP-Nonce"
)

const (
	maxProofLen = 8 << 10 // an RSA-4096 jwk and a long URL fit with room to spare
	maxJTILen   = 256
)

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 thumbprint of the proof's key: the cnf.jkt of the tokens it binds.
	JKT string
	// ReplayID names the proof (its key and jti, hashed) for the replay record, which must be
	// kept ReplayTTL: as long as the proof's iat is acceptable.
	ReplayID  string
	ReplayTTL time.Duration
}

// Options configure a Checker.
type Options struct {
	// Issuer is tokend's issuer: htu may name its origin (scheme, host and port) besides the
	// request's own (a proxy in front may rewrite Host).
	Issuer string
	// Window is how far a proof's iat may be from the server's clock, either way (default 60s).
	Window time.Duration
	// Nonces, if set, makes every proof carry a current server nonce (RFC 9449 §8).
	Nonces *Nonces
	// Replay records a proof's ReplayID for ttl and reports whether it was recorded before; the
	// whole fleet shares the record (Redis SET NX with expiry).
	Replay func(ctx context.Context, id string, ttl time.Duration) (replayed bool, err error)
	// Now tells the time (default time.Now), for tests.
	Now func() time.Time
}

// Checker checks DPoP proofs (RFC 9449 §4.3). It is safe for concurrent use.
type Checker struct {
	issuerOrigin string
	window       time.Duration
	nonces       *Nonces
	replay       func(ctx context.Context, id string, ttl time.Duration) (bool, error)
	now          func() time.Time
}

// NewChecker returns a Checker with opts.
func NewChecker(opts Options) *Checker {
	c := &Checker{window: opts.Window, nonces: opts.Nonces, replay: opts.Replay, now: opts.Now}
	if c.window <= 0 {
		c.window = 60 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	if u, err := url.Parse(opts.Issuer); err == nil && u.Host != "" {
		c.issuerOrigin = normOrigin(u)
	}
	return c
}

// Target is the call a proof must be made for.
type Target struct {
	Method string // the request's HTTP method: htm
	// Scheme, Host and Path of the request: htu must equal scheme://host/path, or the issuer's
	// origin followed by path (RFC 9449 §4.3 step 9: without query and fragment, after RFC 3986
	// §6.2.2-§6.2.3 normalisation: case of scheme and host, default port).
	Scheme, Host, Path string
	// AccessToken is the token presented with the proof on a protected call ("" on a token
	// call): ath must be its hash.
	AccessToken string
}

type header struct {
	Typ string          `json:"typ"`
	Alg string          `json:"alg"`
	JWK json.RawMessage `json:"jwk"`
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// Check verifies proof for target, all but the replay record (the caller writes ReplayID when it
// is about to act on the proof; see Record). Every failure is an *Error.
func (c *Checker) Check(ctx context.Context, proof string, t Target) (*Proof, error) {
	if proof == "" {
		return nil, invalid("DPoP proof missing")
	}
	if len(proof) > maxProofLen {
		return nil, invalid("DPoP proof too long")
	}
	h64, rest, ok1 := strings.Cut(proof, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return nil, invalid("DPoP proof is not a compact JWS")
	}
	var h header
	if err := decodePart(h64, &h); err != nil {
		return nil, invalid("DPoP proof header is malformed")
	}
	if h.Typ != "dpop+jwt" {
		return nil, invalid(`DPoP proof typ must be "dpop+jwt"`)
	}
	method, ok := methods[h.Alg]
	if !ok {
		return nil, invalid("DPoP proof alg must be one of " + strings.Join(Algs, ", "))
	}
	if len(h.JWK) == 0 {
		return nil, invalid("DPoP proof has no jwk header")
	}
	jwk, err := parseJWK(h.JWK)
	if err != nil {
		return nil, invalid("DPoP proof jwk refused: " + err.Error())
	}
	if !keyFits(h.Alg, jwk.key) {
		return nil, invalid("DPoP proof jwk does not fit its alg")
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, invalid("DPoP proof signature is not base64url")
	}
	if err := method.Verify(proof[:len(h64)+1+len(p64)], sig, jwk.key); err != nil {
		return nil, invalid("DPoP proof signature does not verify")
	}
	var cl claims
	if err := decodePart(p64, &cl); err != nil {
		return nil, invalid("DPoP proof claims are malformed")
	}
	switch {
	case cl.JTI == "" || len(cl.JTI) > maxJTILen:
		return nil, invalid("DPoP proof jti missing or too long")
	case cl.HTM != t.Method:
		return nil, invalid("DPoP proof htm does not match the request method")
	case !c.htuMatches(cl.HTU, t):
		return nil, invalid("DPoP proof htu does not match the request URL")
	case cl.IAT == nil || math.IsNaN(*cl.IAT):
		return nil, invalid("DPoP proof iat missing")
	}
	now := c.now()
	iat := time.Unix(int64(*cl.IAT), 0)
	if d := now.Sub(iat); d > c.window || d < -c.window {
		return nil, invalid("DPoP proof iat is outside the accepted window")
	}
	if t.AccessToken != "" {
		sum := sha256.Sum256([]byte(t.AccessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if cl.ATH == nil || subtle.ConstantTimeCompare([]byte(*cl.ATH), []byte(want)) != 1 {
			return nil, invalid("DPoP proof ath does not match the access token")
		}
	}
	if c.nonces != nil {
		var n string
		if cl.Nonce != nil {
			n = *cl.Nonce
		}
		if err := c.nonces.check(ctx, n); err != nil {
			return nil, err
		}
	}
	rid := sha256.Sum256([]byte(jwk.jkt + "\x00" + cl.JTI))
	return &Proof{JKT: jwk.jkt, ReplayID: base64.RawURLEncoding.EncodeToString(rid[:]), ReplayTTL: 2*c.window + time.Second}, nil
}

// Record writes p's replay record: an *Error when the proof was seen before anywhere in the
// fleet; another error when the record cannot be written (the caller answers unavailable).
func (c *Checker) Record(ctx context.Context, p *Proof) error {
	if c.replay == nil {
		return errors.New("dpop: no replay store")
	}
	replayed, err := c.replay(ctx, p.ReplayID, p.ReplayTTL)
	if err != nil {
		return err
	}
	if replayed {
		return ErrReplayed()
	}
	return nil
}

// ErrReplayed is the refusal of a proof whose jti was seen before.
func ErrReplayed() *Error { return invalid("DPoP proof jti was used before") }

// decodePart decodes one base64url JWS part as strict JSON into v.
func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// keyFits reports whether key is of the type and size alg needs.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256() || alg == "ES384" && k.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "PS256"
	}
	return false
}

func (c *Checker) htuMatches(htu string, t Target) bool {
	u, err := url.Parse(htu)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") {
		return false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if path != t.Path {
		return false
	}
	got := normOrigin(u)
	if t.Host != "" {
		if self := normOrigin(&url.URL{Scheme: t.Scheme, Host: t.Host}); got == self {
			return true
		}
	}
	return c.issuerOrigin != "" && got == c.issuerOrigin
}

// normOrigin is scheme://host[:port] in lower case, without the scheme's default port.
func normOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host += ":" + port
	}
	return scheme + "://" + host
}
