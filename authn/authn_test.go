package authn_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

const (
	issuer = "https://tokend.test"
	// procedure is a procedure of the authorization table that first-party
	// sessions may call.
	procedure = authz.ListAPITokens
)

// fixture serves one protected procedure (echoing the caller's owner) and
// one public one behind the middleware. The revocation check of a token is
// its session's, in a real (embedded) store: revoke ends the session, and
// down points the check at a Redis that is not there.
type fixture struct {
	keys    *tokens.KeySet
	srv     *httptest.Server
	store   *redisstore.Store
	dead    *redisstore.Store
	family  string
	storeUp bool
}

func newFixture(t *testing.T, deferred ...string) (*fixture, *http.ServeMux) {
	return newFixtureServing(t, func(w http.ResponseWriter, r *http.Request) {
		c, ok := authn.CallerFrom(r.Context())
		if !ok || c.Kind != authz.FirstParty {
			http.Error(w, "no first-party caller", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, c.Owner)
	}, deferred...)
}

// newFixtureServing is newFixture with handler serving procedure.
func newFixtureServing(t *testing.T, handler http.HandlerFunc, deferred ...string) (*fixture, *http.ServeMux) {
	t.Helper()
	key, err := tokens.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := tokens.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := redisstore.Open(context.Background(), "", redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	dead, err := redisstore.Open(context.Background(), "redis://127.0.0.1:1", redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dead.Close() })
	rt, err := store.CreateRefresh(context.Background(), redisstore.Session{UserID: "42"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: ks, store: store, dead: dead, family: rt.FamilyID, storeUp: true}
	revocation := func(c *tokens.Claims) (redisstore.Gate, bool, error) {
		s := f.store
		if !f.storeUp {
			s = f.dead
		}
		return redisstore.Gate{s.SessionCheck(c.SessionID)}, false, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mw := authn.NewMiddleware(tokens.NewVerifier(ks, issuer), issuer, revocation, log)
	mw.Defer(deferred...)
	mux := http.NewServeMux()
	mux.HandleFunc(procedure, handler)
	mux.HandleFunc("/test.v1.Service/Public", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "public")
	})
	f.srv = httptest.NewServer(mw.Wrap(mux))
	t.Cleanup(f.srv.Close)
	return f, mux
}

// revoke ends the fixture's session.
func (f *fixture) revoke(t *testing.T) {
	t.Helper()
	if err := f.store.RevokeFamily(context.Background(), f.family); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) validClaims() *tokens.Claims {
	now := time.Now()
	c := &tokens.Claims{Kind: tokens.KindUser, SessionID: f.family, ClientID: authz.FirstPartyClientID}
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
	f, _ := newFixture(t)
	tok, err := f.keys.Sign(f.validClaims())
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
	f, _ := newFixture(t)
	status, body, _ := f.call(t, "/test.v1.Service/Public", "")
	if status != http.StatusOK || body != "public" {
		t.Fatalf("got %d %q", status, body)
	}
}

// hostile builds tokens that must all be refused, each with the same answer.
func TestMiddlewareRefusesBadTokens(t *testing.T) {
	f, _ := newFixture(t)
	validClaims := f.validClaims
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
	f, _ := newFixture(t)
	tok, _ := f.keys.Sign(f.validClaims())
	f.storeUp = false
	status, body, js := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusServiceUnavailable || js["code"] != "unavailable" {
		t.Fatalf("store down: got %d %s, want 503 unavailable", status, body)
	}
	f.storeUp = true
	f.revoke(t)
	if status, body, _ := f.call(t, procedure, "Bearer "+tok); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: got %d %s, want 401", status, body)
	}
}

// TestMiddlewareAppliesTable: the authorization table decides, before any
// revocation check, with permission_denied: a token delegated to a client, an
// M2M token and a token for another audience may not call a first-party
// procedure.
func TestMiddlewareAppliesTable(t *testing.T) {
	f, _ := newFixture(t)
	delegated := f.validClaims()
	delegated.ClientID = "1001"
	m2m := f.validClaims()
	m2m.Kind, m2m.Owner, m2m.SessionID, m2m.ClientID = tokens.KindClient, "42", "", "svc"
	otherAud := f.validClaims()
	otherAud.Audience = jwt.ClaimStrings{"https://api.example"}
	for name, c := range map[string]*tokens.Claims{"delegated": delegated, "m2m": m2m, "other audience": otherAud} {
		tok, err := f.keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		status, body, js := f.call(t, procedure, "Bearer "+tok)
		if status != http.StatusForbidden || js["code"] != "permission_denied" {
			t.Errorf("%s: got %d %s, want 403 permission_denied", name, status, body)
		}
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

// TestMiddlewareDeferredCheck: a deferred procedure's handler starts with
// its revocation check pending (it carries it into its first store read),
// and nothing it writes leaves unless the check passes.
func TestMiddlewareDeferredCheck(t *testing.T) {
	const silent = authz.DeleteAPIToken
	var (
		events   []string
		writeErr error
	)
	f, mux := newFixtureServing(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := authn.CallerFrom(r.Context())
		events = append(events, fmt.Sprintf("handler, %d pending", len(c.Pending)))
		w.Header().Set("X-Answer", "yes")
		_, writeErr = io.WriteString(w, "records of ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, c.Owner)
	}, procedure, silent)
	mux.HandleFunc(silent, func(http.ResponseWriter, *http.Request) { events = append(events, "silent handler") })
	tok, _ := f.keys.Sign(f.validClaims())

	status, body, _ := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusOK || body != "records of 42" {
		t.Fatalf("passing token: %d %q", status, body)
	}
	if got := strings.Join(events, "; "); got != "handler, 1 pending" {
		t.Errorf("events %q: want the handler to start with its check pending", got)
	}

	f.storeUp = false
	status, body, js := f.call(t, procedure, "Bearer "+tok)
	if status != http.StatusServiceUnavailable || js["code"] != "unavailable" || strings.Contains(body, "records") {
		t.Errorf("store down: %d %s; want 503 unavailable", status, body)
	}
	f.storeUp = true

	f.revoke(t)
	for _, path := range []string{procedure, silent} {
		events, writeErr = nil, nil
		status, body, js := f.call(t, path, "Bearer "+tok)
		if status != http.StatusUnauthorized || js["code"] != "unauthenticated" || strings.Contains(body, "records") {
			t.Errorf("%s, revoked token: %d %s; want the one unauthenticated refusal", path, status, body)
		}
		if len(events) != 1 {
			t.Errorf("%s, revoked token: events %q", path, events)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+procedure, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Answer") != "" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("revoked token: %d, headers %v; want the refusal's headers, not the handler's", resp.StatusCode, resp.Header)
	}
	if writeErr == nil {
		t.Error("a refused handler's write succeeded")
	}

	// A bad token is refused before the handler runs, as ever.
	events = nil
	if status, _, _ := f.call(t, procedure, "Bearer not.a.jwt"); status != http.StatusUnauthorized || len(events) != 0 {
		t.Errorf("bad token: %d, events %q", status, events)
	}
}
