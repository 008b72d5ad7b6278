package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewKeySet(t *testing.T) {
	a, b := testKey(t, AlgEdDSA, 0), testKey(t, AlgES256, 0)
	again, err := ParseKeyPEM(must(a.MarshalPEM()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		keys    []*Key
		wantErr string
	}{
		{"none", nil, "no keys"},
		{"nil key", []*Key{a, nil}, "key 1 is nil"},
		{"zero key", []*Key{{}}, "key 0 is nil"},
		{"same key twice", []*Key{a, b, again}, "duplicates kid " + a.ID()},
		{"two keys", []*Key{a, b}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := NewKeySet(tt.keys...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ks.Signer() != tt.keys[0] {
				t.Error("Signer is not the first key")
			}
			got := ks.Keys()
			if len(got) != len(tt.keys) || got[0] != tt.keys[0] || got[1] != tt.keys[1] {
				t.Errorf("Keys() = %v, want %v", got, tt.keys)
			}
			got[0] = nil // the caller's copy
			if ks.Signer() == nil {
				t.Error("Keys() exposes the set's slice")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestJWKSIndependentVerifier reads the JWKS the way a resource server would, with no help from this
// package, and verifies a token of every key with it.
func TestJWKSIndependentVerifier(t *testing.T) {
	keys := []*Key{testKey(t, AlgEdDSA, 0), testKey(t, AlgES256, 0), testKey(t, AlgRS256, 0)}
	ks := mustKeySet(t, keys...)
	raw := ks.JWKS()

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, raw)
	}
	if len(doc.Keys) != len(keys) {
		t.Fatalf("JWKS has %d keys, want %d", len(doc.Keys), len(keys))
	}
	pubs := map[string]crypto.PublicKey{}
	algOf := map[string]string{}
	for i, m := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := m[private]; ok {
				t.Fatalf("JWK %d publishes private member %q", i, private)
			}
		}
		if m["use"] != "sig" {
			t.Errorf("JWK %d use = %v, want sig", i, m["use"])
		}
		kid, _ := m["kid"].(string)
		alg, _ := m["alg"].(string)
		if kid != keys[i].ID() || alg != keys[i].Alg() {
			t.Errorf("JWK %d kid/alg = %s/%s, want %s/%s", i, kid, alg, keys[i].ID(), keys[i].Alg())
		}
		pub, thumb := parseJWK(t, m)
		if thumb != kid {
			t.Errorf("JWK %d: kid %s is not its RFC 7638 thumbprint %s", i, kid, thumb)
		}
		pubs[kid], algOf[kid] = pub, alg
	}

	keyfunc := func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		pub, ok := pubs[kid]
		if !ok || algOf[kid] != tok.Method.Alg() {
			return nil, fmt.Errorf("no key %q for %s", kid, tok.Method.Alg())
		}
		return pub, nil
	}
	for i, k := range keys {
		t.Run(k.Alg(), func(t *testing.T) {
			// Each key in turn signs: rotate it to the front.
			order := append([]*Key{k}, append(append([]*Key{}, keys[:i]...), keys[i+1:]...)...)
			tok := mustSign(t, mustKeySet(t, order...), testClaims(now()))
			var c Claims
			parsed, err := jwt.ParseWithClaims(tok, &c, keyfunc,
				jwt.WithValidMethods([]string{k.Alg()}), jwt.WithIssuer(testIssuer), jwt.WithTimeFunc(now))
			if err != nil {
				t.Fatalf("independent verifier refused the token: %v", err)
			}
			if parsed.Header["kid"] != k.ID() || parsed.Header["typ"] != "at+jwt" {
				t.Errorf("header = %v", parsed.Header)
			}
			if c.Subject != "42" || c.Kind != KindUser {
				t.Errorf("claims = %+v", c)
			}
		})
	}

	// JWKS is computed once and callers cannot change it.
	raw[0] = 'X'
	if ks.JWKS()[0] != '{' {
		t.Error("JWKS() returns the set's own buffer")
	}
}

// parseJWK turns a public JWK into a Go public key and computes its RFC 7638 thumbprint.
func parseJWK(t *testing.T, m map[string]any) (crypto.PublicKey, string) {
	t.Helper()
	str := func(name string) string {
		s, _ := m[name].(string)
		if s == "" {
			t.Fatalf("JWK %v lacks %q", m, name)
		}
		return s
	}
	dec := func(name string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(str(name))
		if err != nil {
			t.Fatalf("JWK member %s: %v", name, err)
		}
		return b
	}
	var (
		pub   crypto.PublicKey
		canon string
	)
	switch kty := str("kty"); kty {
	case "OKP":
		if str("crv") != "Ed25519" {
			t.Fatalf("crv %s", m["crv"])
		}
		x := dec("x")
		if len(x) != ed25519.PublicKeySize {
			t.Fatalf("Ed25519 x has %d bytes", len(x))
		}
		pub = ed25519.PublicKey(x)
		canon = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, str("x"))
	case "EC":
		if str("crv") != "P-256" {
			t.Fatalf("crv %s", m["crv"])
		}
		x, y := dec("x"), dec("y")
		if len(x) != 32 || len(y) != 32 {
			t.Fatalf("P-256 coordinates of %d and %d bytes, want 32", len(x), len(y))
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		pub = p
		canon = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, str("x"), str("y"))
	case "RSA":
		n, e := dec("n"), dec("e")
		if n[0] == 0 || e[0] == 0 {
			t.Fatal("RSA n or e has a leading zero byte")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		canon = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, str("e"), str("n"))
	default:
		t.Fatalf("kty %s", kty)
	}
	sum := sha256.Sum256([]byte(canon))
	return pub, base64.RawURLEncoding.EncodeToString(sum[:])
}
