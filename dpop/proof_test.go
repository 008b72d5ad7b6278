package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/dpop/dpoptest"
)

const (
	issuer = "https://auth.example.com"
	path   = "/m2moauthserver.pb.M2MOAuthService/GetTokens"
)

var target = dpop.Target{Method: "POST", Scheme: "http", Host: "10.0.0.7:8080", Path: path}

// memReplay is the replay record in a map, for unit tests (redisstore has the real one).
type memReplay struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memReplay) record(_ context.Context, id string, _ time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	seen := m.seen[id]
	m.seen[id] = true
	return seen, nil
}

func newChecker() *dpop.Checker {
	return dpop.NewChecker(dpop.Options{Issuer: issuer, Window: time.Minute, Replay: (&memReplay{}).record})
}

// TestCheckRules holds each rule of RFC 9449 §4.3 to a proof that breaks only it.
func TestCheckRules(t *testing.T) {
	k := dpoptest.NewES256()
	other := dpoptest.NewEdDSA()
	self := "http://10.0.0.7:8080" + path
	const at = "eyJ.access.token"
	bad := func(o dpoptest.Opts) string { return k.Proof("POST", self, o) }
	ok := []struct {
		name  string
		proof string
		tgt   dpop.Target
	}{
		{"ES256 under the request's host", bad(dpoptest.Opts{}), target},
		{"EdDSA", other.Proof("POST", self, dpoptest.Opts{}), target},
		{"issuer's origin", k.Proof("POST", issuer+path, dpoptest.Opts{}), target},
		{"issuer's origin, default port and case", k.Proof("POST", "HTTPS://Auth.Example.com:443"+path, dpoptest.Opts{}), target},
		{"query and fragment ignored", k.Proof("POST", self+"?x=1#f", dpoptest.Opts{}), target},
		{"ath on a protected call", bad(dpoptest.Opts{AccessToken: at}), withToken(at)},
		{"iat within the window", bad(dpoptest.Opts{IATOffset: -50 * time.Second}), target},
		{"GET for a Connect GET", k.Proof("GET", self, dpoptest.Opts{}), dpop.Target{Method: "GET", Scheme: "http", Host: "10.0.0.7:8080", Path: path}},
	}
	for _, c := range ok {
		p, err := newChecker().Check(t.Context(), c.proof, c.tgt)
		if err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
			continue
		}
		if p.JKT == "" || p.ReplayID == "" {
			t.Errorf("%s: proof %+v", c.name, p)
		}
	}
	refused := []struct {
		name  string
		proof string
		tgt   dpop.Target
	}{
		{"empty", "", target},
		{"not a JWS", "abc.def", target},
		{"wrong typ", bad(dpoptest.Opts{Header: map[string]any{"typ": "JWT"}}), target},
		{"alg none", bad(dpoptest.Opts{None: true}), target},
		{"HMAC", bad(dpoptest.Opts{HMAC: []byte("secret")}), target},
		{"alg not the key's", bad(dpoptest.Opts{Header: map[string]any{"alg": "EdDSA"}}), target},
		{"no jwk", bad(dpoptest.Opts{Header: map[string]any{"jwk": nil}}), target},
		{"private key in jwk", bad(dpoptest.Opts{Header: map[string]any{"jwk": k.JWK(true)}}), target},
		{"another key's jwk", bad(dpoptest.Opts{Header: map[string]any{"jwk": other.JWK(false)}}), target},
		{"symmetric jwk", bad(dpoptest.Opts{Header: map[string]any{"jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}}), target},
		{"wrong htm", bad(dpoptest.Opts{Claims: map[string]any{"htm": "GET"}}), target},
		{"htm case", bad(dpoptest.Opts{Claims: map[string]any{"htm": "post"}}), target},
		{"wrong htu path", k.Proof("POST", "http://10.0.0.7:8080/auth.v1.AuthService/Token", dpoptest.Opts{}), target},
		{"wrong htu host", k.Proof("POST", "http://evil.example"+path, dpoptest.Opts{}), target},
		{"wrong htu scheme", k.Proof("POST", "https://10.0.0.7:8080"+path, dpoptest.Opts{}), target},
		{"relative htu", k.Proof("POST", path, dpoptest.Opts{}), target},
		{"stale iat", bad(dpoptest.Opts{IATOffset: -2 * time.Minute}), target},
		{"future iat", bad(dpoptest.Opts{IATOffset: 2 * time.Minute}), target},
		{"no iat", bad(dpoptest.Opts{Claims: map[string]any{"iat": nil}}), target},
		{"no jti", bad(dpoptest.Opts{Claims: map[string]any{"jti": nil}}), target},
		{"long jti", bad(dpoptest.Opts{JTI: strings.Repeat("j", 300)}), target},
		{"no ath on a protected call", bad(dpoptest.Opts{}), withToken(at)},
		{"ath of another token", bad(dpoptest.Opts{AccessToken: "other"}), withToken(at)},
		{"tampered claims", tamper(bad(dpoptest.Opts{})), target},
		{"huge", bad(dpoptest.Opts{Claims: map[string]any{"pad": strings.Repeat("x", 9000)}}), target},
	}
	for _, c := range refused {
		_, err := newChecker().Check(t.Context(), c.proof, c.tgt)
		de, isProof := dpop.As(err)
		if !isProof || de.Code != dpop.CodeInvalidProof {
			t.Errorf("%s: got %v, want invalid_dpop_proof", c.name, err)
		}
	}
}

func withToken(at string) dpop.Target { t := target; t.AccessToken = at; return t }

// tamper swaps the claims of a signed proof for others.
func tamper(proof string) string {
	parts := strings.Split(proof, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"htm":"POST","htu":"http://10.0.0.7:8080` + path + `","iat":` +
		jsonNum(time.Now().Unix()) + `,"jti":"other"}`))
	return strings.Join(parts, ".")
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRecordOnce(t *testing.T) {
	c := newChecker()
	k := dpoptest.NewES256()
	proof := k.Proof("POST", issuer+path, dpoptest.Opts{JTI: "once"})
	for i, want := range []bool{true, false} {
		p, err := c.Check(t.Context(), proof, target)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Record(t.Context(), p)
		if (err == nil) != want {
			t.Fatalf("presentation %d: %v", i+1, err)
		}
	}
	// The same jti under another key is another proof.
	p, _ := c.Check(t.Context(), dpoptest.NewES256().Proof("POST", issuer+path, dpoptest.Opts{JTI: "once"}), target)
	if err := c.Record(t.Context(), p); err != nil {
		t.Fatalf("same jti, other key: %v", err)
	}
}

type memNonces struct {
	mu        sync.Mutex
	cur, prev string
}

func (m *memNonces) RotateDPoPNonce(_ context.Context, _ time.Duration, fresh string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == "" {
		m.cur = fresh
	}
	return m.cur, m.prev, nil
}

func (m *memNonces) rotate(fresh string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prev, m.cur = m.cur, fresh
}

// TestNonces: a proof without the nonce gets use_dpop_nonce with a nonce to use; the current and
// the previous nonce pass; a nonce another replica just rotated in passes at once.
func TestNonces(t *testing.T) {
	store := &memNonces{}
	c := dpop.NewChecker(dpop.Options{Issuer: issuer, Nonces: dpop.NewNonces(store, time.Hour)})
	k := dpoptest.NewES256()
	_, err := c.Check(t.Context(), k.Proof("POST", issuer+path, dpoptest.Opts{}), target)
	de, ok := dpop.As(err)
	if !ok || de.Code != dpop.CodeUseNonce || de.Nonce == "" {
		t.Fatalf("no nonce: %v", err)
	}
	first := de.Nonce
	if _, err := c.Check(t.Context(), k.Proof("POST", issuer+path, dpoptest.Opts{Nonce: first}), target); err != nil {
		t.Fatalf("current nonce: %v", err)
	}
	store.rotate("second")             // another replica rotated; this one has not looked yet
	time.Sleep(110 * time.Millisecond) // unknown nonces make it look again, at most every 100ms
	if _, err := c.Check(t.Context(), k.Proof("POST", issuer+path, dpoptest.Opts{Nonce: "second"}), target); err != nil {
		t.Fatalf("nonce rotated in elsewhere: %v", err)
	}
	if _, err := c.Check(t.Context(), k.Proof("POST", issuer+path, dpoptest.Opts{Nonce: first}), target); err != nil {
		t.Fatalf("previous nonce: %v", err)
	}
	store.rotate("third")
	c = dpop.NewChecker(dpop.Options{Issuer: issuer, Nonces: dpop.NewNonces(store, time.Hour)}) // a replica that looks now
	_, err = c.Check(t.Context(), k.Proof("POST", issuer+path, dpoptest.Opts{Nonce: first}), target)
	if de, ok := dpop.As(err); !ok || de.Code != dpop.CodeUseNonce || de.Nonce != "third" {
		t.Fatalf("nonce two rotations old: %v", err)
	}
}

// TestInteropGoJOSE: a proof made by go-jose, an independent JOSE implementation, with its jwk
// embedded, passes, and tokend's thumbprint is go-jose's (RFC 7638).
func TestInteropGoJOSE(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"jti": "jose-1", "htm": "POST", "htu": issuer + path, "iat": time.Now().Unix()})
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newChecker().Check(t.Context(), proof, target)
	if err != nil {
		t.Fatalf("go-jose proof refused: %v", err)
	}
	tp, _ := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if want := base64.RawURLEncoding.EncodeToString(tp); p.JKT != want {
		t.Errorf("jkt %s, go-jose thumbprint %s", p.JKT, want)
	}
}

// TestThumbprintRFC7638 checks the example of RFC 7638 §3.1.
func TestThumbprintRFC7638(t *testing.T) {
	jwk := `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	got, err := dpop.Thumbprint([]byte(jwk))
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %q, %v", got, err)
	}
}

// TestErrorWire: the WWW-Authenticate challenge names the error and the algs (RFC 9449 §7.1).
func TestErrorWire(t *testing.T) {
	e := &dpop.Error{Code: dpop.CodeUseNonce, Description: "a DPoP nonce is required", Nonce: "n1", Resource: true}
	ce := e.ConnectError()
	if ce.Meta().Get("DPoP-Nonce") != "n1" || !strings.HasPrefix(ce.Meta().Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) ||
		!strings.Contains(ce.Meta().Get("WWW-Authenticate"), `algs="ES256 ES384 EdDSA RS256 PS256"`) {
		t.Errorf("meta %v", ce.Meta())
	}
	if e.HTTPStatus() != 401 {
		t.Errorf("status %d", e.HTTPStatus())
	}
}
