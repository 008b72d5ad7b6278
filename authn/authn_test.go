package authn_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/tokens"
)

const (
	issuer    = "https://tokend.test"
	procedure = "/test.v1.Service/Protected"
)

// fixture serves one protected procedure (echoing the caller's sub) and one
// public one behind the middleware.
type fixture struct {
	keys    *tokens.KeySet
	srv     *httptest.Server
	revoked map[string]bool
	storeUp bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key, err := tokens.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := tokens.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: ks, revoked: map[string]bool{}, storeUp: true}
	check := func(_ context.Context, c *tokens.Claims) (bool, error) {
		if !f.storeUp {
			return false, errors.New("dial tcp: connection refused")
		}
		return f.revoked[c.ID], nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mw := authn.NewMiddleware(tokens.NewVerifier(ks, issuer), log, []string{procedure}, check)
	mux := http.NewServeMux()
	mux.HandleFunc(procedure, func(w http.ResponseWriter, r *http.Request) {
		c, ok := authn.ClaimsFrom(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, c.Subject)
	})
	mux.HandleFunc("/test.v1.Service/Public", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "public")
	})
	f.srv = httptest.NewServer(mw.Wrap(mux))
	t.Cleanup(f.srv.Close)
	return f
}

func validClaims() *tokens.Claims {
	now := time.Now()
	c := &tokens.Claims{Kind: tokens.KindUser}
	c.Issuer = issuer
	c.Subject = "42"
	c.Audience = jwt.ClaimStrings{issuer}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Minute))
	c.ID = "jti-1"
	return c
}

// call makes a Connect unary JSON call with the given Authorization header.
func (f *fixture) call(t *testing.T, path, authorization string) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var js map[string]any
	_ = json.Unmarshal(body, &js)
	return resp.StatusCode, string(body), js
}

func TestMiddlewareAcceptsValidToken(t *testing.T) {
	f := newFixture(t)
	tok, err := f.keys.Sign(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		status, body, _ := f.call(t, procedure, scheme+tok)
		if status != http.StatusOK || body != "42" {
			t.Errorf("scheme %q: got %d %q, want 200 \"42\"", scheme, status, body)
		}
	}
}

func TestMiddlewareLeavesPublicPathsAlone(t *testing.T) {
	f := newFixture(t)
	status, body, _ := f.call(t, "/test.v1.Service/Public", "")
	if status != http.StatusOK || body != "public" {
		t.Fatalf("got %d %q", status, body)
	}
}

// hostile builds tokens that must all be refused, each with the same answer.
func TestMiddlewareRefusesBadTokens(t *testing.T) {
	f := newFixture(t)
	signer := f.keys.Signer()
	pub := signer.Public().(ed25519.PublicKey)

	mustSign := func(c *tokens.Claims) string {
		s, err := f.keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := mustSign(validClaims())
	parts := strings.Split(good, ".")

	noneTok := func() string {
		t := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims())
		t.Header["kid"] = signer.ID()
		t.Header["typ"] = "at+jwt"
		s, _ := t.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	hmacWith := func(secret []byte) string {
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims())
		t.Header["kid"] = signer.ID()
		t.Header["typ"] = "at+jwt"
		s, _ := t.SignedString(secret)
		return s
	}
	wrongIss := validClaims()
	wrongIss.Issuer = "https://evil.test"
	expired := validClaims()
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	expired.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
	noExp := validClaims()
	noExp.ExpiresAt = nil

	// Tamper: same header and signature, payload with another subject.
	tamperedClaims := validClaims()
	tamperedClaims.Subject = "1"
	payload, _ := json.Marshal(tamperedClaims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 0xff
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	other, _ := tokens.GenerateKey("EdDSA")
	otherSet, _ := tokens.NewKeySet(other)
	foreign, _ := otherSet.Sign(validClaims())

	cases := map[string]string{
		"no header":                "",
		"basic scheme":             "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")),
		"empty bearer":             "Bearer ",
		"garbage":                  "Bearer not.a.jwt",
		"alg none":                 "Bearer " + noneTok,
		"HS256 with public key":    "Bearer " + hmacWith(pub),
		"HS256 with JWKS x string": "Bearer " + hmacWith([]byte(base64.RawURLEncoding.EncodeToString(pub))),
		"wrong iss":                "Bearer " + mustSign(wrongIss),
		"expired":                  "Bearer " + mustSign(expired),
		"no exp":                   "Bearer " + mustSign(noExp),
		"tampered payload":         "Bearer " + tampered,
		"tampered signature":       "Bearer " + badSig,
		"signed by unknown key":    "Bearer " + foreign,
	}
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			status, body, js := f.call(t, procedure, header)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d (%s), want 401", status, body)
			}
			if js["code"] != "unauthenticated" || js["message"] != "missing or invalid access token" {
				t.Fatalf("body %s: want the one unauthenticated message", body)
			}
		})
	}
}

func TestMiddlewareRevocationHook(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.keys.Sign(validClaims())
	f.revoked["jti-1"] = true
	if status, body, _ := f.call(t, procedure, "Bearer "+tok); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: got %d %s, want 401", status, body)
	}
	f.revoked["jti-1"] = false
	f.storeUp = false
	status, body, js := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusServiceUnavailable || js["code"] != "unavailable" {
		t.Fatalf("store down: got %d %s, want 503 unavailable", status, body)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer  abc ": "abc",
		"Bearer":       "",
		"Bearerabc":    "",
		"Token abc":    "",
	} {
		got, ok := authn.BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

// TestMiddlewareDeferredCheck: a deferred procedure's handler starts before
// its revocation check is settled, and nothing it writes leaves unless the
// check passes.
func TestMiddlewareDeferredCheck(t *testing.T) {
	key, _ := tokens.GenerateKey("EdDSA")
	ks, _ := tokens.NewKeySet(key)
	const silent = "/test.v1.Service/Silent"
	var (
		revoked, storeUp = false, true
		events           []string
		writeErr         error
	)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mw := authn.NewMiddleware(tokens.NewVerifier(ks, issuer), log, []string{procedure, silent},
		func(context.Context, *tokens.Claims) (bool, error) {
			t.Error("the deferred procedure ran the ordinary check")
			return false, nil
		})
	mw.Defer(func(ctx context.Context, c *tokens.Claims) (context.Context, func(context.Context) (bool, error)) {
		events = append(events, "deferred "+c.ID)
		return ctx, func(context.Context) (bool, error) {
			events = append(events, "settled")
			if !storeUp {
				return false, errors.New("dial tcp: connection refused")
			}
			return revoked, nil
		}
	}, procedure, silent)
	mux := http.NewServeMux()
	mux.HandleFunc(procedure, func(w http.ResponseWriter, r *http.Request) {
		events = append(events, "handler")
		w.Header().Set("X-Answer", "yes")
		_, writeErr = io.WriteString(w, "records of ")
		w.(http.Flusher).Flush()
		c, _ := authn.ClaimsFrom(r.Context())
		_, _ = io.WriteString(w, c.Subject)
	})
	mux.HandleFunc(silent, func(http.ResponseWriter, *http.Request) { events = append(events, "handler") })
	srv := httptest.NewServer(mw.Wrap(mux))
	defer srv.Close()
	f := &fixture{keys: ks, srv: srv}
	tok, _ := ks.Sign(validClaims())

	status, body, _ := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusOK || body != "records of 42" {
		t.Fatalf("passing token: %d %q", status, body)
	}
	if got := strings.Join(events, ", "); got != "deferred jti-1, handler, settled" {
		t.Errorf("events %q: want the handler to start before the check is settled", got)
	}

	for _, path := range []string{procedure, silent} {
		revoked, events = true, nil
		status, body, js := f.call(t, path, "Bearer "+tok)
		if status != http.StatusUnauthorized || js["code"] != "unauthenticated" || strings.Contains(body, "records") {
			t.Errorf("%s, revoked token: %d %s; want the one unauthenticated refusal", path, status, body)
		}
		if len(events) != 3 || events[2] != "settled" {
			t.Errorf("%s, revoked token: events %q", path, events)
		}
	}
	if writeErr == nil {
		t.Error("a refused handler's write succeeded")
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+procedure, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Answer") != "" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("revoked token: %d, headers %v; want the refusal's headers, not the handler's", resp.StatusCode, resp.Header)
	}

	revoked, storeUp = false, false
	status, body, js := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusServiceUnavailable || js["code"] != "unavailable" || strings.Contains(body, "records") {
		t.Errorf("store down: %d %s; want 503 unavailable", status, body)
	}

	// A bad token is refused before the handler runs, as ever.
	events = nil
	if status, _, _ := f.call(t, procedure, "Bearer not.a.jwt"); status != http.StatusUnauthorized || len(events) != 0 {
		t.Errorf("bad token: %d, events %q", status, events)
	}
}
