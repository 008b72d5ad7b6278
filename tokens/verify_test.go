package tokens

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forge builds a JWS from any header and payload, signed by sign (nil: empty signature).
func forge(t *testing.T, header map[string]any, payload any, sign func(input string) []byte) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	in := b64(must(json.Marshal(header))) + "." + b64(must(json.Marshal(payload)))
	var sig []byte
	if sign != nil {
		sig = sign(in)
	}
	return in + "." + b64(sig)
}

// signWith signs with a jwt.SigningMethod and key, as an attacker or a foreign library would.
func signWith(t *testing.T, m jwt.SigningMethod, key any) func(string) []byte {
	return func(in string) []byte {
		sig, err := m.Sign(in, key)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func TestVerifyRefuses(t *testing.T) {
	keyA, keyB := testKey(t, AlgEdDSA, 0), testKey(t, AlgEdDSA, 1)
	keyEC := testKey(t, AlgES256, 0)
	ks := mustKeySet(t, keyA, keyEC) // keyB is not in the set
	v := NewVerifier(ks, testIssuer, WithClock(now))

	pubA := keyA.Public().(ed25519.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pubA))})
	var jwks struct{ Keys []struct{ X string } }
	must(0, json.Unmarshal(ks.JWKS(), &jwks))

	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid} }
	claims := func(f func(*Claims)) *Claims { c := testClaims(now()); f(c); return c }
	good := testClaims(now())
	signA := signWith(t, jwt.SigningMethodEdDSA, keyA.signer)
	valid := mustSign(t, ks, good)
	parts := strings.Split(valid, ".")

	tamperedSig := func() string {
		sig := must(base64.RawURLEncoding.DecodeString(parts[2]))
		sig[10] ^= 0x01
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	tamperedPayload := func() string {
		c := testClaims(now())
		c.Subject = "1" // become user 1
		p := base64.RawURLEncoding.EncodeToString(must(json.Marshal(c)))
		return parts[0] + "." + p + "." + parts[2]
	}
	// The last character of an Ed25519 signature carries 2 unused bits: setting one keeps the bytes.
	nonCanonicalSig := func() string {
		last := parts[2][len(parts[2])-1]
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		return valid[:len(valid)-1] + string(alphabet[i^1])
	}

	tests := []struct {
		name    string
		token   string
		wantErr string // substring of the logged detail
	}{
		{"empty", "", "malformed"},
		{"two parts", parts[0] + "." + parts[1], "malformed"},
		{"four parts", valid + ".x", "malformed"},
		{"garbage", "a.b.c", "malformed"},
		{"too long", valid + strings.Repeat("A", maxTokenLen), "longer than"},
		{"alg none", forge(t, hdr("none", keyA.ID()), good, nil), "signing method none is invalid"},
		{"alg none unsigned jwt lib", must(jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)), "invalid"},
		{"HS256 with public key bytes", forge(t, hdr("HS256", keyA.ID()), good, signWith(t, jwt.SigningMethodHS256, []byte(pubA))), "signing method HS256 is invalid"},
		{"HS256 with public key PEM", forge(t, hdr("HS256", keyA.ID()), good, signWith(t, jwt.SigningMethodHS256, pubPEM)), "signing method HS256 is invalid"},
		{"HS256 with JWKS x", forge(t, hdr("HS256", keyA.ID()), good, signWith(t, jwt.SigningMethodHS256, []byte(jwks.Keys[0].X))), "signing method HS256 is invalid"},
		{"PS256", forge(t, hdr("PS256", keyA.ID()), good, signA), "signing method PS256 is invalid"},
		{"wrong iss", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.Issuer = "https://evil.example" }), signA), "issuer"},
		{"iss missing", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.Issuer = "" }), signA), "iss claim is required"},
		{"expired", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now().Add(-time.Minute)) }), signA), "expired"},
		{"exp missing", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.ExpiresAt = nil }), signA), "exp claim is required"},
		{"nbf in the future", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now().Add(time.Minute)) }), signA), "not valid yet"},
		{"iat in the future", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now().Add(time.Minute)) }), signA), "used before issued"},
		{"exp not a number", forge(t, hdr("EdDSA", keyA.ID()), map[string]any{"iss": testIssuer, "sub": "42", "kind": "user", "exp": "tomorrow"}, signA), "malformed"},
		{"tampered payload", tamperedPayload(), "signature is invalid"},
		{"tampered signature", tamperedSig(), "signature is invalid"},
		{"non-canonical base64 signature", nonCanonicalSig(), "malformed"},
		{"kid missing", forge(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt"}, good, signA), "kid missing"},
		{"unknown kid", forge(t, hdr("EdDSA", keyB.ID()), good, signWith(t, jwt.SigningMethodEdDSA, keyB.signer)), "unknown kid"},
		{"kid of A, signed by B", forge(t, hdr("EdDSA", keyA.ID()), good, signWith(t, jwt.SigningMethodEdDSA, keyB.signer)), "signature is invalid"},
		{"kid of EC key, alg EdDSA", forge(t, hdr("EdDSA", keyEC.ID()), good, signA), "does not match kid"},
		{"kid of Ed25519 key, alg ES256", forge(t, hdr("ES256", keyA.ID()), good, signWith(t, jwt.SigningMethodES256, keyEC.signer)), "does not match kid"},
		{"typ JWT", forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": keyA.ID()}, good, signA), `typ "JWT"`},
		{"typ missing", forge(t, map[string]any{"alg": "EdDSA", "kid": keyA.ID()}, good, signA), "typ"},
		{"crit header", forge(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": keyA.ID(), "crit": []string{"exp"}}, good, signA), "crit"},
		{"kind missing", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.Kind = "" }), signA), "kind missing"},
		{"kind unknown", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.Kind = "admin" }), signA), "unknown kind"},
		{"user token with a client name as sub", forge(t, hdr("EdDSA", keyA.ID()), claims(func(c *Claims) { c.Subject = "m2m-svc" }), signA), "decimal user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if c != nil {
				t.Error("claims returned with an error")
			}
		})
	}

	// The forging helpers make tokens that pass when nothing is wrong.
	if _, err := v.Verify(forge(t, hdr("EdDSA", keyA.ID()), good, signA)); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestVerifyAccepts(t *testing.T) {
	k := testKey(t, AlgEdDSA, 0)
	ks := mustKeySet(t, k)
	signK := signWith(t, jwt.SigningMethodEdDSA, k.signer)
	hdr := func(typ string) map[string]any { return map[string]any{"alg": "EdDSA", "typ": typ, "kid": k.ID()} }
	for _, typ := range []string{"at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"} {
		if _, err := NewVerifier(ks, testIssuer, WithClock(now)).Verify(forge(t, hdr(typ), testClaims(now()), signK)); err != nil {
			t.Errorf("typ %q: %v", typ, err)
		}
	}
	// Every kind, with the sub it takes.
	for _, kc := range []struct{ kind, sub string }{{KindUser, "1"}, {KindClient, "svc-owner"}, {KindAPIToken, "7"}} {
		c := testClaims(now())
		c.Kind, c.Subject, c.APITokenID = kc.kind, kc.sub, "at-1"
		got, err := NewVerifier(ks, testIssuer, WithClock(now)).Verify(mustSign(t, ks, c))
		if err != nil || got.Kind != kc.kind || got.Subject != kc.sub {
			t.Errorf("kind %s: %+v, %v", kc.kind, got, err)
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	tok := mustSign(t, ks, testClaims(now())) // exp = now + 15m, iat = now
	exp := now().Add(15 * time.Minute)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return exp.Add(d) } }
	tests := []struct {
		name string
		opts []VerifierOption
		ok   bool
	}{
		{"before exp", []VerifierOption{WithClock(at(-time.Second))}, true},
		{"default leeway: 20s after exp", []VerifierOption{WithClock(at(20 * time.Second))}, true},
		{"default leeway: 31s after exp", []VerifierOption{WithClock(at(31 * time.Second))}, false},
		{"no leeway: at exp", []VerifierOption{WithClock(at(0)), WithLeeway(0)}, false},
		{"no leeway: 1s before exp", []VerifierOption{WithClock(at(-time.Second)), WithLeeway(0)}, true},
		{"negative leeway counts as 0", []VerifierOption{WithClock(at(-time.Second)), WithLeeway(-time.Hour)}, true},
		{"2m leeway: 90s after exp", []VerifierOption{WithClock(at(90 * time.Second)), WithLeeway(2 * time.Minute)}, true},
		{"default leeway: iat 20s ahead of our clock", []VerifierOption{WithClock(func() time.Time { return now().Add(-20 * time.Second) })}, true},
		{"default leeway: iat 40s ahead of our clock", []VerifierOption{WithClock(func() time.Time { return now().Add(-40 * time.Second) })}, false},
		{"option order does not matter", []VerifierOption{WithLeeway(2 * time.Minute), WithClock(at(90 * time.Second))}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(ks, testIssuer, tt.opts...).Verify(tok)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestVerifyRealClock(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	if _, err := NewVerifier(ks, testIssuer).Verify(mustSign(t, ks, testClaims(time.Now()))); err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(ks, testIssuer).Verify(mustSign(t, ks, testClaims(now()))); err == nil {
		t.Fatal("token of 2026-03-01 accepted now") // the fixed test clock is in the past
	}
}

func TestVerifyEmptyIssuerRefusesAll(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	c := testClaims(now())
	c.Issuer = ""
	_, err := NewVerifier(ks, "", WithClock(now)).Verify(mustSign(t, ks, c))
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a verifier without issuer accepted a token without iss: %v", err)
	}
}

// TestRotation: a new key is put first; tokens of the old key (now second) still verify.
func TestRotation(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			oldKey, fresh := testKey(t, alg, 0), testKey(t, AlgEdDSA, 2)
			before := mustKeySet(t, oldKey)
			after := mustKeySet(t, fresh, oldKey)
			oldTok := mustSign(t, before, testClaims(now()))
			newTok := mustSign(t, after, testClaims(now()))

			if kid := headerOf(t, newTok)["kid"]; kid != fresh.ID() {
				t.Errorf("after rotation the token is signed by %v, want %s", kid, fresh.ID())
			}
			v := NewVerifier(after, testIssuer, WithClock(now))
			for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
				if _, err := v.Verify(tok); err != nil {
					t.Errorf("%s token refused after rotation: %v", name, err)
				}
			}
			// Once the old key is dropped, its tokens are refused.
			if _, err := NewVerifier(mustKeySet(t, fresh), testIssuer, WithClock(now)).Verify(oldTok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("old token accepted after its key left the set: %v", err)
			}
		})
	}
}

func headerOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	var m map[string]any
	must(0, json.Unmarshal(must(base64.RawURLEncoding.DecodeString(h)), &m))
	return m
}

// TestConcurrent shares one KeySet and Verifier between goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	for _, alg := range algs {
		ks := mustKeySet(t, testKey(t, alg, 0))
		v := NewVerifier(ks, testIssuer, WithClock(now))
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					c := testClaims(now())
					c.ID = string(rune('a'+g)) + string(rune('a'+i))
					tok, err := ks.Sign(c)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := v.Verify(tok)
					if err != nil || got.ID != c.ID {
						t.Errorf("%s: got %+v, %v", alg, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
