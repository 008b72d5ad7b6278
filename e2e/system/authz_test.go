package system

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	authpb "github.com/tokend/tokend/gen/auth"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// The attack suite replays, over the network and against the built binary
// on a real redis-server, each way a credential used to act beyond what it
// was issued for, and asserts tokend's refusal. Every test also runs the
// legitimate counterpart of its attack, so that a refusal for an unrelated
// reason (a broken token, a misconfigured client) cannot pass for the
// protection.

// attackIssuer is the issuer of every process of the suite: fixed, so that a
// process restarted on another port over the same Redis verifies the tokens
// of the one before it (as replicas behind one name do).
const attackIssuer = "https://tokend.test"

// attackSetup is what a test's tokend is configured with.
type attackSetup struct {
	grace   string          // tokens.refresh_reuse_grace ("0s" when empty)
	foreign string          // a foreign issuer trusted by client fed ("" for none)
	drop    map[string]bool // user names and client ids left out of the configuration
	// pwrGrants replaces client pwr's grant_types (default [password, refresh_token]).
	pwrGrants string
	// extraUsers and extraClients are appended to users[] and clients[].
	extraUsers, extraClients string
}

// attackConfig is a tokend configuration for the suite. Users: alice (7),
// bob (8), carol (9). Clients: 1001 (authorization code with refresh, scopes
// read and profile), 1003 (authorization code without refresh), pw
// (password grant only), pwr (password and refresh), svc (M2M with a
// secret, owner svc-owner), self-service (M2M by tokend's own tokens as
// assertions), fed (M2M by a foreign issuer's assertions, owner fed-owner),
// rs (a resource server for audience "api"), other (an unrelated client)
// and nolife (M2M without access_token_lifetime).
func attackConfig(t testing.TB, addr, redisURL, keyFile string, s attackSetup) string {
	t.Helper()
	if s.grace == "" {
		s.grace = "0s"
	}
	if s.pwrGrants == "" {
		s.pwrGrants = "[password, refresh_token]"
	}
	secret := hashOf(t, clientSecret)
	users := []struct{ name, line string }{
		{"alice", fmt.Sprintf("{id: 7, username: alice, password_hash: %q}", hashOf(t, alicePassword))},
		{"bob", fmt.Sprintf("{id: 8, username: bob, password_hash: %q}", hashOf(t, bobPassword))},
		{"carol", fmt.Sprintf("{id: 9, username: carol, password_hash: %q}", hashOf(t, bobPassword))},
	}
	clients := []struct{ id, line string }{
		{"1001", fmt.Sprintf("{id: \"1001\", secret_hash: %q, redirect_uris: [%q], grant_types: [authorization_code, refresh_token], scopes: [read, profile]}", secret, redirectURI)},
		{"1003", fmt.Sprintf("{id: \"1003\", secret_hash: %q, redirect_uris: [%q], grant_types: [authorization_code], scopes: [read]}", secret, redirectURI)},
		{"pw", fmt.Sprintf("{id: pw, secret_hash: %q, grant_types: [password], scopes: [read]}", secret)},
		{"pwr", fmt.Sprintf("{id: pwr, secret_hash: %q, grant_types: %s, scopes: [read]}", secret, s.pwrGrants)},
		{"svc", fmt.Sprintf("{id: svc, secret_hash: %q, grant_types: [client_credentials], owner: svc-owner, audiences: [api, %q], scopes: [read], access_token_lifetime: 1h}", secret, attackIssuer)},
		{"self-service", fmt.Sprintf("{id: self-service, grant_types: [client_credentials], audiences: [api, %q], scopes: [read], access_token_lifetime: 1h, assertion_issuers: [%q]}", attackIssuer, attackIssuer)},
		{"rs", fmt.Sprintf("{id: rs, secret_hash: %q, grant_types: [client_credentials], owner: rs-owner, audiences: [rs], resource_audiences: [api]}", secret)},
		{"other", fmt.Sprintf("{id: other, secret_hash: %q, grant_types: [client_credentials], owner: other-owner, audiences: [other]}", secret)},
		{"nolife", fmt.Sprintf("{id: nolife, secret_hash: %q, grant_types: [client_credentials], owner: nolife-owner, audiences: [api]}", secret)},
	}
	if s.foreign != "" {
		clients = append(clients, struct{ id, line string }{"fed", fmt.Sprintf(
			"{id: fed, secret_hash: %q, grant_types: [client_credentials], owner: fed-owner, audiences: [api, %q], scopes: [read], access_token_lifetime: 1h, assertion_issuers: [%q]}",
			secret, attackIssuer, s.foreign)})
	}
	var b strings.Builder
	fmt.Fprintf(&b, `addr: %q
issuer: %q
redis:
  url: %q
signing:
  key_files: [%q]
tokens:
  access_ttl: 15m
  refresh_ttl: 24h
  code_ttl: 1m
  refresh_reuse_grace: %s
login_throttle:
  max_failures: 1000
  window: 1m
log:
  format: json
  level: info
limits:
  max_request_bytes: 65536
  shutdown_timeout: 10s
users:
`, addr, attackIssuer, redisURL, keyFile, s.grace)
	for _, u := range users {
		if !s.drop[u.name] {
			fmt.Fprintf(&b, "  - %s\n", u.line)
		}
	}
	b.WriteString(s.extraUsers)
	b.WriteString("clients:\n")
	for _, c := range clients {
		if !s.drop[c.id] {
			fmt.Fprintf(&b, "  - %s\n", c.line)
		}
	}
	b.WriteString(s.extraClients)
	return b.String()
}

// attackEnv is one test's Redis, signing key and tokend.
type attackEnv struct {
	t     *testing.T
	redis *redistest.Server
	key   string
	p     *proc
}

func newAttackEnv(t *testing.T, s attackSetup) *attackEnv {
	e := &attackEnv{t: t, redis: redistest.Start(t), key: signingKey(t)}
	e.p = e.start(s)
	return e
}

// start runs another tokend over the same Redis and key with setup s.
func (e *attackEnv) start(s attackSetup) *proc {
	return startTokend(e.t, func(addr string) string { return attackConfig(e.t, addr, e.redis.URL, e.key, s) })
}

// restart stops the current tokend (SIGTERM) and starts one with setup s
// over the same Redis: a configuration change as operators roll it out.
func (e *attackEnv) restart(s attackSetup) {
	e.p.Signal(syscall.SIGTERM)
	_ = e.p.Wait(15 * time.Second)
	e.p = e.start(s)
}

var jsonOpts = []connect.ClientOption{connect.WithProtoJSON()}

// attackProtocols are the wire protocols the table attacks are replayed
// over: Connect JSON and gRPC.
func attackProtocols() []protocol {
	var out []protocol
	for _, p := range protocols() {
		if p.name == "connect+json" || p.name == "grpc" {
			out = append(out, p)
		}
	}
	return out
}

func (e *attackEnv) auth() authv1connect.AuthServiceClient {
	return authv1connect.NewAuthServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)
}

// login signs user in (first party) and returns the access and refresh token.
func (e *attackEnv) login(user, pass string) (access, refresh string) {
	e.t.Helper()
	r, err := e.auth().Token(context.Background(), passwordLogin(user, pass))
	if err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return r.Msg.AccessToken, r.Msg.RefreshToken
}

func (e *attackEnv) m2m(bearer string) m2mpbconnect.M2MOAuthServiceClient {
	if bearer == "" {
		return m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)
	}
	return m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, e.p.URL, withBearer(jsonOpts, bearer)...)
}

func (e *attackEnv) apiTokens(bearer string) tokenservicev1alpha1connect.TokenServiceClient {
	return tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, withBearer(jsonOpts, bearer)...)
}

// svcToken mints an M2M token of client svc (owner svc-owner) for aud.
func (e *attackEnv) svcToken(aud ...string) string {
	e.t.Helper()
	r, err := e.m2m("").CreateToken(context.Background(), connect.NewRequest(&m2mpb.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: "svc", ClientSecret: clientSecret, Audience: aud}))
	if err != nil {
		e.t.Fatalf("svc CreateToken: %v", err)
	}
	return r.Msg.AccessToken
}

// asserted mints an M2M token of client with assertion as client_assertion.
func (e *attackEnv) asserted(client, assertion, name string) (*m2mpb.CreateTokenResponse, error) {
	r, err := e.m2m("").CreateToken(context.Background(), connect.NewRequest(&m2mpb.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: client, TokenName: name,
		ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: assertion}))
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// mustAsserted is asserted that must succeed; it returns the access token.
func (e *attackEnv) mustAsserted(client, assertion, name string) string {
	e.t.Helper()
	r, err := e.asserted(client, assertion, name)
	if err != nil {
		e.t.Fatalf("CreateToken at %s with an assertion: %v", client, err)
	}
	return r.AccessToken
}

// listM2M returns the M2M tokens GetTokens streams to bearer's owner
// (blacklisted ones included), or the call's error.
func listM2M(ctx context.Context, c m2mpbconnect.M2MOAuthServiceClient) ([]*m2mpb.Token, error) {
	stream, err := c.GetTokens(ctx, connect.NewRequest(&m2mpb.GetTokensRequest{IncludeBlacklisted: true}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var out []*m2mpb.Token
	for stream.Receive() {
		out = append(out, stream.Msg())
	}
	return out, stream.Err()
}

// mustList is listM2M that must succeed.
func (e *attackEnv) mustList(bearer string) []*m2mpb.Token {
	e.t.Helper()
	out, err := listM2M(context.Background(), e.m2m(bearer))
	if err != nil {
		e.t.Fatalf("GetTokens: %v", err)
	}
	return out
}

// blacklisted reports whether the token with id is listed and blacklisted.
func blacklisted(list []*m2mpb.Token, id string) (found, bl bool) {
	for _, tok := range list {
		if tok.Id == id {
			return true, tok.Blacklisted.GetFlag()
		}
	}
	return false, false
}

// payload decodes a JWT's claims without verifying it (the tests read
// tokend's own tokens, which tokend verified when it issued them).
func payload(t testing.TB, jwtStr string) map[string]any {
	t.Helper()
	parts := strings.Split(jwtStr, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwtStr)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jti(t testing.TB, tok string) string {
	t.Helper()
	id, _ := payload(t, tok)["jti"].(string)
	if id == "" {
		t.Fatalf("token without jti: %v", payload(t, tok))
	}
	return id
}

// form POSTs an x-www-form-urlencoded body to path, with HTTP Basic client
// credentials when user is not empty, and returns the status and the JSON
// body (nil when there is none).
func form(t testing.TB, base, path string, v url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s answered %d with %q", path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

// introspect asks /oauth/introspect about token as client id (secret
// clientSecret) and returns the answer.
func (e *attackEnv) introspect(id, token string) map[string]any {
	e.t.Helper()
	status, m := form(e.t, e.p.URL, "/oauth/introspect", url.Values{"token": {token}}, id, clientSecret)
	if status != http.StatusOK {
		e.t.Fatalf("introspect as %s: %d %v", id, status, m)
	}
	return m
}

func active(m map[string]any) bool { b, _ := m["active"].(bool); return b }

// wantOAuthError checks an RFC 6749 error answer.
func wantOAuthError(t *testing.T, status int, m map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || m["error"] != wantCode {
		t.Fatalf("got %d %v, want %d error %q", status, m, wantStatus, wantCode)
	}
	if _, leaked := m["access_token"]; leaked {
		t.Fatalf("an error answer carries a token: %v", m)
	}
}

// code has alice's first-party session issue an authorization code for
// client (1001 or 1003) with scope, and exchanges it with the client's
// secret: the token response a third-party client receives.
func (e *attackEnv) delegated(firstParty string, client uint32, scope string) *authpb.ExchangeTokenResponse {
	e.t.Helper()
	ctx := context.Background()
	verifier := strings.Repeat("a", 43)
	sum := sha256.Sum256([]byte(verifier))
	codes := authpbconnect.NewAuthServiceClient(http.DefaultClient, e.p.URL, withBearer(jsonOpts, firstParty)...)
	code, err := codes.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
		UserId: 7, ClientId: client, RedirectUri: redirectURI, Scope: scope,
		CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256"}))
	if err != nil {
		e.t.Fatal("GenerateAuthorizationCode:", err)
	}
	ex, err := authpbconnect.NewAuthServiceClient(http.DefaultClient, e.p.URL, jsonOpts...).ExchangeToken(ctx,
		connect.NewRequest(&authpb.ExchangeTokenRequest{Code: code.Msg.Code, ClientId: client, ClientSecret: clientSecret,
			RedirectUri: redirectURI, CodeVerifier: verifier}))
	if err != nil {
		e.t.Fatal("ExchangeToken:", err)
	}
	return ex.Msg
}

// foreignIssuer is an OpenID provider on loopback whose assertions clients
// may trust: a discovery document, a JWKS with one Ed25519 key, and Sign.
type foreignIssuer struct {
	URL  string
	priv ed25519.PrivateKey
}

func startForeign(t *testing.T) *foreignIssuer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &foreignIssuer{priv: priv}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
			"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Sign returns an assertion with claims; iss, exp and a fresh jti are set
// unless claims name them (a nil value leaves the claim out).
func (f *foreignIssuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{"iss": f.URL, "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		"jti": fmt.Sprintf("j-%d", time.Now().UnixNano())}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttack01DelegatedTokenActsAsUser: "A user consents to a third-party
// client for scope profile. With the access token that client receives,
// TokenService/CreateToken mints a never-expiring API token for the user,
// which survives revoking the client's session; the same token lists and
// blacklists all of the user's M2M tokens (GetTokens, DeleteTokens {}) and
// works as a client_assertion at M2M CreateToken."
func TestAttack01DelegatedTokenActsAsUser(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	alice, _ := e.login("alice", alicePassword)
	// alice's own M2M token, which the third party must not see or revoke.
	mine := e.mustAsserted("self-service", alice, "alice's")
	third := e.delegated(alice, 1001, "profile").AccessToken
	if c := payload(t, third); c["client_id"] != "1001" || c["sub"] != "7" {
		t.Fatalf("the delegated token is not alice's for client 1001: %v", c)
	}
	// It is a good token: its client sees it active.
	if m := e.introspect("1001", third); !active(m) {
		t.Fatalf("the delegated token is not active to its client: %v", m)
	}

	for _, pr := range attackProtocols() {
		t.Run(pr.name, func(t *testing.T) {
			opts := withBearer(pr.opts, third)
			api := tokenservicev1alpha1connect.NewTokenServiceClient(pr.client, e.p.URL, opts...)
			_, err := api.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "stolen"}))
			wantCode(t, err, connect.CodePermissionDenied)
			_, err = api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			wantCode(t, err, connect.CodePermissionDenied)
			_, err = api.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: "x"}))
			wantCode(t, err, connect.CodePermissionDenied)
			verifier := sha256.Sum256([]byte(strings.Repeat("b", 43)))
			_, err = authpbconnect.NewAuthServiceClient(pr.client, e.p.URL, opts...).GenerateAuthorizationCode(ctx,
				connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{UserId: 7, ClientId: 1001, RedirectUri: redirectURI,
					Scope: "read", CodeChallenge: base64.RawURLEncoding.EncodeToString(verifier[:]), CodeChallengeMethod: "S256"}))
			wantCode(t, err, connect.CodePermissionDenied)
			m2m := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, e.p.URL, opts...)
			_, err = listM2M(ctx, m2m)
			wantCode(t, err, connect.CodePermissionDenied)
			_, err = m2m.DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
			wantCode(t, err, connect.CodePermissionDenied)
			_, err = m2mpbconnect.NewM2MOAuthServiceClient(pr.client, e.p.URL, pr.opts...).CreateToken(ctx,
				connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "self-service",
					ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: third}))
			wantCode(t, err, connect.CodeUnauthenticated)
		})
	}
	// And over /oauth/token: the delegated token is no client assertion.
	status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"self-service"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {third}}, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")

	// Nothing of alice's changed: no API token, her M2M token not blacklisted.
	list, err := e.apiTokens(alice).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	if err != nil || len(list.Msg.Tokens) != 0 {
		t.Fatalf("alice's API tokens: %v, %v; want none", list, err)
	}
	if found, bl := blacklisted(e.mustList(alice), jti(t, mine)); !found || bl {
		t.Fatalf("alice's M2M token: found %v, blacklisted %v", found, bl)
	}
	// The same calls with alice's own session succeed: the refusals above
	// are the table's, not a broken setup.
	if _, err := e.apiTokens(alice).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "mine"})); err != nil {
		t.Fatal("alice's own CreateToken:", err)
	}
}

// TestAttack02Deprovisioning: "A user removed from users[] keeps refreshing
// for ever (each rotation restarts refresh_ttl), keeps passing the bearer
// check, can mint API tokens and M2M tokens." The same for a client removed
// from clients[]: its sessions and M2M tokens end.
func TestAttack02Deprovisioning(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	carol, carolRefresh := e.login("carol", bobPassword)
	secret, err := e.apiTokens(carol).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "carol's script"}))
	if err != nil {
		t.Fatal(err)
	}
	public := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)
	bought, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: secret.Msg.Token.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	carolM2M := e.mustAsserted("self-service", carol, "carol's")
	// A delegated session of client pwr, and an M2M token of client svc.
	status, pwr := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"alice"},
		"password": {alicePassword}}, "pwr", clientSecret)
	if status != http.StatusOK || pwr["refresh_token"] == nil {
		t.Fatalf("pwr password grant: %d %v", status, pwr)
	}
	svc := e.svcToken(attackIssuer)
	alice, aliceRefresh := e.login("alice", alicePassword)

	// carol, pwr and svc leave the configuration.
	e.restart(attackSetup{drop: map[string]bool{"carol": true, "pwr": true, "svc": true}})
	auth := e.auth()
	public = tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)

	_, err = auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: carolRefresh}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.apiTokens(carol).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.apiTokens(carol).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "more"}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: secret.Msg.Token.Secret}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = listM2M(ctx, e.m2m(bought.Msg.AccessToken))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.asserted("self-service", carol, "after")
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.asserted("self-service", bought.Msg.AccessToken, "after")
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.m2m(carolM2M).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	// The removed clients: svc's token and pwr's session.
	_, err = listM2M(ctx, e.m2m(svc))
	wantCode(t, err, connect.CodeUnauthenticated)
	status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {pwr["refresh_token"].(string)}}, "", "")
	if status == http.StatusOK {
		t.Fatalf("a removed client's refresh token still refreshes: %v", m)
	}

	// alice, still configured, keeps everything: the refusals are about
	// what was removed, not about the restart.
	if _, err := e.apiTokens(alice).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})); err != nil {
		t.Fatal("alice's session after the restart:", err)
	}
	if _, err := auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: aliceRefresh})); err != nil {
		t.Fatal("alice's refresh after the restart:", err)
	}
}

// TestAttack03ForeignAssertionWithoutOwner: "A foreign assertion without the
// owner claim gets the client's own owner, so any token from a trusted
// foreign issuer lists and revokes the service's tokens."
func TestAttack03ForeignAssertionWithoutOwner(t *testing.T) {
	f := startForeign(t)
	e := newAttackEnv(t, attackSetup{foreign: f.URL})
	ctx := context.Background()
	// fed-owner's own token, made with fed's secret.
	own, err := e.m2m("").CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
		ClientId: "fed", ClientSecret: clientSecret, Audience: []string{attackIssuer}}))
	if err != nil {
		t.Fatal(err)
	}
	noOwner := f.Sign(t, map[string]any{"aud": attackIssuer})
	_, err = e.asserted("fed", noOwner, "")
	wantCode(t, err, connect.CodeUnauthenticated)
	status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"fed"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {f.Sign(t, map[string]any{"aud": attackIssuer})}}, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")

	// With the owner claim the same issuer is served, as its own subject.
	withOwner := e.mustAsserted("fed", f.Sign(t, map[string]any{"aud": attackIssuer, "sub": "robot"}), "")
	if got := payload(t, withOwner)["owner"]; got != f.URL+"#robot" {
		t.Fatalf("owner of a foreign subject = %v, want %q", got, f.URL+"#robot")
	}
	list := e.mustList(withOwner)
	if found, _ := blacklisted(list, jti(t, own.Msg.AccessToken)); found {
		t.Fatal("a foreign subject lists fed-owner's tokens")
	}
	if _, err := e.m2m(withOwner).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{})); err != nil {
		t.Fatal(err)
	}
	if found, bl := blacklisted(e.mustList(own.Msg.AccessToken), jti(t, own.Msg.AccessToken)); !found || bl {
		t.Fatalf("fed-owner's token after a foreign DeleteTokens: found %v, blacklisted %v", found, bl)
	}
}

// TestAttack04ForeignOwnerNotScoped: "Owners are not scoped by issuer. A
// foreign issuer's subject "1" is tokend user 1: it reads that user's M2M
// records and blacklists them."
func TestAttack04ForeignOwnerNotScoped(t *testing.T) {
	f := startForeign(t)
	e := newAttackEnv(t, attackSetup{foreign: f.URL})
	ctx := context.Background()
	alice, _ := e.login("alice", alicePassword)
	hers := e.mustAsserted("self-service", alice, "alice's")
	if payload(t, hers)["owner"] != "7" {
		t.Fatalf("alice's M2M token: %v", payload(t, hers))
	}
	// The foreign issuer asserts subject "7", alice's user id.
	spoof := e.mustAsserted("fed", f.Sign(t, map[string]any{"aud": attackIssuer, "sub": "7"}), "")
	if got := payload(t, spoof)["owner"]; got == "7" || got != f.URL+"#7" {
		t.Fatalf("foreign subject 7 has owner %v, want %q", got, f.URL+"#7")
	}
	for _, tok := range e.mustList(spoof) {
		if tok.Owner == "7" || tok.Id == jti(t, hers) {
			t.Fatalf("foreign subject 7 lists alice's token %v", tok)
		}
	}
	del, err := e.m2m(spoof).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{jti(t, hers)}}))
	if err != nil || del.Msg.BlacklistedCount != 0 {
		t.Fatalf("foreign subject 7 deleting alice's token by id: %v, %v", del, err)
	}
	if _, err := e.m2m(spoof).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{})); err != nil {
		t.Fatal(err)
	}
	if found, bl := blacklisted(e.mustList(alice), jti(t, hers)); !found || bl {
		t.Fatalf("alice's token after foreign subject 7's DeleteTokens: found %v, blacklisted %v", found, bl)
	}
	if _, err := listM2M(ctx, e.m2m(hers)); err != nil {
		t.Fatal("alice's M2M token stopped working:", err)
	}
}

// TestAttack05DerivedTokensOutliveParent: "An M2M token minted from a user's
// access token (or from an API token's access token) stays active after
// Logout or after the API token is deleted, with the M2M client's longer
// lifetime and wider scope."
func TestAttack05DerivedTokensOutliveParent(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()

	t.Run("logout", func(t *testing.T) {
		access, refresh := e.login("alice", alicePassword)
		derived := e.mustAsserted("self-service", access, "from a session")
		if _, err := listM2M(ctx, e.m2m(derived)); err != nil {
			t.Fatal("the derived token before logout:", err)
		}
		if m := e.introspect("rs", derived); !active(m) {
			t.Fatalf("the derived token is not active to its resource server before logout: %v", m)
		}
		if _, err := e.auth().Logout(ctx, connect.NewRequest(&authv1.LogoutRequest{RefreshToken: refresh})); err != nil {
			t.Fatal(err)
		}
		_, err := listM2M(ctx, e.m2m(derived))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = e.m2m(derived).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
		if m := e.introspect("rs", derived); active(m) {
			t.Fatalf("the derived token is active after logout: %v", m)
		}
	})

	t.Run("API token deleted", func(t *testing.T) {
		session, _ := e.login("alice", alicePassword)
		api := e.apiTokens(session)
		created, err := api.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "script"}))
		if err != nil {
			t.Fatal(err)
		}
		bought, err := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...).
			GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
		if err != nil {
			t.Fatal(err)
		}
		derived := e.mustAsserted("self-service", bought.Msg.AccessToken, "from an API token")
		if _, err := listM2M(ctx, e.m2m(derived)); err != nil {
			t.Fatal("the derived token before the delete:", err)
		}
		if _, err := api.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: created.Msg.Token.Id})); err != nil {
			t.Fatal(err)
		}
		_, err = listM2M(ctx, e.m2m(derived))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = e.m2m(derived).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
		if m := e.introspect("rs", derived); active(m) {
			t.Fatalf("the derived token is active after its API token was deleted: %v", m)
		}
		// The session that made the API token is untouched.
		if _, err := listM2M(ctx, e.m2m(session)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAttack06AudienceIgnored: "An M2M token minted for audience api is
// accepted by DeleteTokens: any resource server a token was sent to can
// mass-revoke its owner's tokens."
func TestAttack06AudienceIgnored(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	forAPI := e.svcToken("api")
	forTokend := e.svcToken(attackIssuer)
	for _, pr := range attackProtocols() {
		t.Run(pr.name, func(t *testing.T) {
			c := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, e.p.URL, withBearer(pr.opts, forAPI)...)
			_, err := c.DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
			wantCode(t, err, connect.CodePermissionDenied)
			_, err = listM2M(ctx, c)
			wantCode(t, err, connect.CodePermissionDenied)
			// The owner's token for tokend itself manages them.
			if _, err := listM2M(ctx, m2mpbconnect.NewM2MOAuthServiceClient(pr.client, e.p.URL, withBearer(pr.opts, forTokend)...)); err != nil {
				t.Fatal(err)
			}
		})
	}
	list := e.mustList(forTokend)
	for _, id := range []string{jti(t, forAPI), jti(t, forTokend)} {
		if found, bl := blacklisted(list, id); !found || bl {
			t.Fatalf("svc-owner's token %s: found %v, blacklisted %v", id, found, bl)
		}
	}
}

// TestAttack07ForeignAssertionAudienceAndReplay: "Foreign assertions need no
// aud by default and can be replayed (RFC 7523 §3 says the audience MUST name
// this server)."
func TestAttack07ForeignAssertionAudienceAndReplay(t *testing.T) {
	f := startForeign(t)
	e := newAttackEnv(t, attackSetup{foreign: f.URL})

	_, err := e.asserted("fed", f.Sign(t, map[string]any{"sub": "robot"}), "")
	wantCode(t, err, connect.CodeUnauthenticated) // no aud
	_, err = e.asserted("fed", f.Sign(t, map[string]any{"sub": "robot", "aud": "https://other-server.example"}), "")
	wantCode(t, err, connect.CodeUnauthenticated) // another server's
	status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"fed"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {f.Sign(t, map[string]any{"sub": "robot"})}}, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")

	// aud naming tokend (its issuer, or its token endpoint) is accepted once.
	for _, aud := range []any{attackIssuer, []string{"x", attackIssuer + "/oauth/token"}} {
		a := f.Sign(t, map[string]any{"sub": "robot", "aud": aud})
		if _, err := e.asserted("fed", a, ""); err != nil {
			t.Fatalf("aud %v: %v", aud, err)
		}
		_, err := e.asserted("fed", a, "")
		wantCode(t, err, connect.CodeUnauthenticated) // the same assertion again
		status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"fed"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, "", "")
		wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")
	}
	// A fresh signature over a used jti is the same assertion.
	a := f.Sign(t, map[string]any{"sub": "robot", "aud": attackIssuer, "jti": "once"})
	if _, err := e.asserted("fed", a, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.asserted("fed", f.Sign(t, map[string]any{"sub": "robot", "aud": attackIssuer, "jti": "once",
		"exp": time.Now().Add(4 * time.Minute).Unix()}), "")
	wantCode(t, err, connect.CodeUnauthenticated)
	// No jti: no way to tell a replay, refused.
	_, err = e.asserted("fed", f.Sign(t, map[string]any{"sub": "robot", "aud": attackIssuer, "jti": nil}), "")
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestAttack08RefreshWithoutClientAuth: "A confidential client's refresh
// token is redeemable at /oauth/token without client authentication (RFC
// 6749 §6), and a client's grant_types never gates refresh_token (a client
// with only password gets and uses refresh tokens)."
func TestAttack08RefreshWithoutClientAuth(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	pwrLogin := func() string {
		t.Helper()
		status, m := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"alice"},
			"password": {alicePassword}}, "pwr", clientSecret)
		rt, _ := m["refresh_token"].(string)
		if status != http.StatusOK || rt == "" {
			t.Fatalf("pwr password grant: %d %v", status, m)
		}
		return rt
	}
	refresh := func(rt string, v url.Values, user, pass string) (int, map[string]any) {
		if v == nil {
			v = url.Values{}
		}
		v.Set("grant_type", "refresh_token")
		v.Set("refresh_token", rt)
		return form(t, e.p.URL, "/oauth/token", v, user, pass)
	}

	// Without any client authentication.
	status, m := refresh(pwrLogin(), nil, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")
	// Naming the confidential client without its secret.
	status, m = refresh(pwrLogin(), url.Values{"client_id": {"pwr"}}, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")
	// With a wrong secret.
	status, m = refresh(pwrLogin(), nil, "pwr", "wrong")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")
	// With another confidential client's credentials.
	status, m = refresh(pwrLogin(), nil, "pw", clientSecret)
	if status == http.StatusOK {
		t.Fatalf("client pw redeemed pwr's refresh token: %v", m)
	}
	// Over the RPC, without credentials.
	_, err := e.auth().RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: pwrLogin()}))
	wantCode(t, err, connect.CodeUnauthenticated)
	// The client itself, authenticated, refreshes (both ways).
	if status, m := refresh(pwrLogin(), nil, "pwr", clientSecret); status != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("pwr's own refresh: %d %v", status, m)
	}
	if _, err := e.auth().RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: pwrLogin(),
		ClientId: "pwr", ClientSecret: clientSecret})); err != nil {
		t.Fatal("pwr's own refresh over the RPC:", err)
	}

	// grant_types gates refresh_token: a password-only client gets none...
	status, m = form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"alice"},
		"password": {alicePassword}}, "pw", clientSecret)
	if status != http.StatusOK || m["refresh_token"] != nil {
		t.Fatalf("password-only client: %d %v; want an access token and no refresh token", status, m)
	}
	// ... nor does a code client without refresh_token ...
	alice, _ := e.login("alice", alicePassword)
	if rt := e.delegated(alice, 1003, "read").RefreshToken; rt != "" {
		t.Fatal("client 1003 (no refresh_token grant) got a refresh token from a code")
	}
	// ... and a refresh token issued while the client had the grant stops
	// refreshing once the grant is taken away.
	rt := pwrLogin()
	e.restart(attackSetup{pwrGrants: "[password]"})
	status, m = refresh(rt, nil, "pwr", clientSecret)
	wantOAuthError(t, status, m, http.StatusBadRequest, "unauthorized_client")
}

// TestAttack09GraceWindowForks: "The refresh grace window forks a session:
// each replay within the window gets its own successor, and every branch
// then lives on independently, never detected as reuse."
func TestAttack09GraceWindowForks(t *testing.T) {
	e := newAttackEnv(t, attackSetup{grace: "30s"})
	ctx := context.Background()
	auth := e.auth()
	rotate := func(rt string) (*authv1.TokenResponse, error) {
		r, err := auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: rt}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	must := func(rt string) *authv1.TokenResponse {
		t.Helper()
		r, err := rotate(rt)
		if err != nil {
			t.Fatal("refresh:", err)
		}
		return r
	}

	t.Run("branches", func(t *testing.T) {
		_, rt0 := e.login("alice", alicePassword)
		legit := must(rt0)    // the user's client rotates
		attacker := must(rt0) // a replay of the same token inside the window: a sibling
		// The attacker's branch goes first and keeps rotating...
		a2 := must(attacker.RefreshToken)
		// ... then the user's sibling is reuse: the family dies, every branch.
		_, err := rotate(legit.RefreshToken)
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = rotate(a2.RefreshToken)
		wantCode(t, err, connect.CodeUnauthenticated)
		for _, access := range []string{a2.AccessToken, legit.AccessToken} {
			_, err := e.apiTokens(access).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated)
		}
		_, err = rotate(rt0)
		wantCode(t, err, connect.CodeUnauthenticated)
	})

	t.Run("replay after a successor was used", func(t *testing.T) {
		_, rt0 := e.login("alice", alicePassword)
		next := must(rt0)
		after := must(next.RefreshToken) // the successor is used
		_, err := rotate(rt0)            // still inside the window, but the family moved on
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = rotate(after.RefreshToken)
		wantCode(t, err, connect.CodeUnauthenticated)
	})

	t.Run("replays capped", func(t *testing.T) {
		_, rt0 := e.login("alice", alicePassword)
		must(rt0)
		var err error
		n := 0
		for ; n < 20; n++ {
			if _, err = rotate(rt0); err != nil {
				break
			}
		}
		wantCode(t, err, connect.CodeUnauthenticated)
		if n == 0 || n > 5 {
			t.Fatalf("%d replays inside the window were served before the refusal; want a few (1..5)", n)
		}
	})

	t.Run("a replay that is never used harms nothing", func(t *testing.T) {
		_, rt0 := e.login("alice", alicePassword)
		legit := must(rt0)
		must(rt0) // a retried request whose answer was lost
		next := must(legit.RefreshToken)
		if _, err := e.apiTokens(next.AccessToken).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})); err != nil {
			t.Fatal(err)
		}
	})
}

// m2mRecordKey is the Redis key of an M2M token's record (redisstore/keys.go).
func m2mRecordKey(owner, id string) string {
	sum := sha256.Sum256([]byte(owner))
	return "tokend:m2m:{" + hex.EncodeToString(sum[:16]) + "}:t:" + id
}

// TestAttack10M2MRevocationFailsOpen: "M2M revocation fails open when Redis
// loses data (a SISMEMBER on a blacklist; a missing record is fine), while
// sessions and API tokens fail closed. A blacklisted token also becomes
// valid again when a delete or the sweep removes it after exp but inside
// the 30 s verification leeway."
func TestAttack10M2MRevocationFailsOpen(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	t.Cleanup(func() { rdb.Close() })

	t.Run("record lost", func(t *testing.T) {
		tok := e.svcToken("api", attackIssuer)
		if _, err := listM2M(ctx, e.m2m(tok)); err != nil {
			t.Fatal("before the loss:", err)
		}
		if m := e.introspect("svc", tok); !active(m) {
			t.Fatalf("before the loss: %v", m)
		}
		key := m2mRecordKey("svc-owner", jti(t, tok))
		if n, err := rdb.Del(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("DEL %s: %d, %v (is the key schema still this?)", key, n, err)
		}
		_, err := listM2M(ctx, e.m2m(tok))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = e.m2m(tok).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
		if m := e.introspect("svc", tok); active(m) {
			t.Fatalf("a token whose record is gone is active: %v", m)
		}
		if m := e.introspect("rs", tok); active(m) {
			t.Fatalf("a token whose record is gone is active to its resource server: %v", m)
		}
	})

	t.Run("blacklisted, expired, deleted", func(t *testing.T) {
		manager := e.svcToken(attackIssuer)
		short, err := e.m2m("").CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
			ClientId: "svc", ClientSecret: clientSecret, Audience: []string{attackIssuer},
			Expiration: time.Now().Add(3 * time.Second).Unix()}))
		if err != nil {
			t.Fatal(err)
		}
		tok := short.Msg.AccessToken
		del, err := e.m2m(manager).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{jti(t, tok)}}))
		if err != nil || del.Msg.BlacklistedCount != 1 {
			t.Fatalf("blacklisting: %v, %v", del, err)
		}
		exp := time.Unix(int64(payload(t, tok)["exp"].(float64)), 0)
		time.Sleep(time.Until(exp) + 1100*time.Millisecond)
		// Past exp, inside the verifier's leeway: a delete removes expired
		// tokens (their blacklist entries with them).
		if _, err := e.m2m(manager).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{jti(t, tok)}})); err != nil {
			t.Fatal(err)
		}
		_, err = listM2M(ctx, e.m2m(tok))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = e.m2m(tok).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
		if m := e.introspect("svc", tok); active(m) {
			t.Fatalf("an expired, blacklisted token is active: %v", m)
		}
		// The manager itself still works.
		if _, err := listM2M(ctx, e.m2m(manager)); err != nil {
			t.Fatal(err)
		}
	})
}

// serveOnce runs `tokend serve` with setup s and reports whether it
// started (then it is stopped at once) or exited, with its output.
func serveOnce(t *testing.T, s attackSetup) (output string, started bool) {
	t.Helper()
	return serveOn(t, redistest.Start(t).URL, signingKey(t), s)
}

// serveOn is serveOnce over the given Redis and signing key.
func serveOn(t *testing.T, redisURL, key string, s attackSetup) (output string, started bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokend.yaml")
	addr := freeAddr(t)
	if err := os.WriteFile(path, []byte(attackConfig(t, addr, redisURL, key, s)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--config", path)
	cmd.Env = append(os.Environ(), "TOKEND_ADDR=", "TOKEND_REDIS_URL=")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return logs.String(), false
		default:
		}
		if status, _ := get("http://" + addr + "/readyz"); status == http.StatusOK {
			_ = cmd.Process.Kill()
			<-done
			return logs.String(), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	t.Fatalf("tokend neither started nor exited within 15s:\n%s", logs.String())
	return "", false
}

// TestAttack11M2MWithoutExpiry: "M2M tokens with no expiry
// (access_token_lifetime: 0) are refused by tokend's own bearer check and
// introspection, but accepted for ever by any other verifier." tokend
// refuses such a configuration, and a client that leaves the key out gets
// tokens that expire.
func TestAttack11M2MWithoutExpiry(t *testing.T) {
	out, started := serveOnce(t, attackSetup{extraClients: fmt.Sprintf(
		"  - {id: forever, secret_hash: %q, grant_types: [client_credentials], owner: forever-owner, audiences: [api], access_token_lifetime: 0}\n",
		hashOf(t, clientSecret))})
	if started {
		t.Fatalf("tokend serve started with access_token_lifetime: 0:\n%s", out)
	}
	if !strings.Contains(out, "access_token_lifetime") || !strings.Contains(out, "clients[") {
		t.Fatalf("the refusal does not name the key:\n%s", out)
	}

	e := newAttackEnv(t, attackSetup{})
	r, err := e.m2m("").CreateToken(context.Background(), connect.NewRequest(&m2mpb.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: "nolife", ClientSecret: clientSecret}))
	if err != nil {
		t.Fatal(err)
	}
	exp, ok := payload(t, r.Msg.AccessToken)["exp"].(float64)
	if !ok || r.Msg.ExpiresIn <= 0 || time.Until(time.Unix(int64(exp), 0)) > 2*time.Hour {
		t.Fatalf("a client without access_token_lifetime got exp %v, expires_in %d; want about 1h", exp, r.Msg.ExpiresIn)
	}
	// And it may not ask for a token beyond that lifetime.
	_, err = e.m2m("").CreateToken(context.Background(), connect.NewRequest(&m2mpb.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: "nolife", ClientSecret: clientSecret,
		Expiration: time.Now().Add(48 * time.Hour).Unix()}))
	wantCode(t, err, connect.CodeInvalidArgument)
}

// TestAttack12IntrospectionByAnyClient: "Any confidential client can
// introspect any token (RFC 7662 §4)."
func TestAttack12IntrospectionByAnyClient(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	forAPI := e.svcToken("api")
	if m := e.introspect("other", forAPI); len(m) != 1 || active(m) {
		t.Fatalf("an unrelated client introspects svc's token: %v; want exactly {\"active\":false}", m)
	}
	if m := e.introspect("svc", forAPI); !active(m) || m["client_id"] != "svc" {
		t.Fatalf("the token's own client: %v", m)
	}
	if m := e.introspect("rs", forAPI); !active(m) || m["owner"] != "svc-owner" {
		t.Fatalf("the resource server of its audience: %v", m)
	}
	// A token for another audience is none of rs's business.
	if m := e.introspect("rs", e.svcToken(attackIssuer)); active(m) {
		t.Fatalf("rs introspects a token not for its audience: %v", m)
	}
	// Users' tokens: a first-party session is nobody's; a delegated token
	// is its client's.
	alice, _ := e.login("alice", alicePassword)
	for _, c := range []string{"other", "svc", "rs", "1001"} {
		if m := e.introspect(c, alice); active(m) {
			t.Fatalf("client %s introspects alice's session token: %v", c, m)
		}
	}
	third := e.delegated(alice, 1001, "read").AccessToken
	if m := e.introspect("other", third); active(m) {
		t.Fatalf("an unrelated client introspects client 1001's token: %v", m)
	}
	if m := e.introspect("1001", third); !active(m) || m["sub"] != "7" {
		t.Fatalf("client 1001 introspecting its own token: %v", m)
	}
	// An unauthenticated introspection is refused outright.
	status, m := form(t, e.p.URL, "/oauth/introspect", url.Values{"token": {forAPI}}, "", "")
	wantOAuthError(t, status, m, http.StatusUnauthorized, "invalid_client")
}

// TestAttack13ClientIDAndDiscovery: "First-party access tokens carry no
// client_id (RFC 9068 §2.2 requires it), and discovery advertises what
// tokend does not serve (id_token_signing_alg_values_supported,
// response_types_supported without an authorization endpoint) while
// omitting the client assertion it accepts."
func TestAttack13ClientIDAndDiscovery(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	alice, _ := e.login("alice", alicePassword)
	created, err := e.apiTokens(alice).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	bought, err := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...).
		GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	_, pw := form(t, e.p.URL, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"alice"},
		"password": {alicePassword}}, "pw", clientSecret)
	pwAccess, _ := pw["access_token"].(string)
	for _, c := range []struct{ what, token, clientID string }{
		{"first-party session", alice, "tokend"},
		{"API token's access token", bought.Msg.AccessToken, "tokend"},
		{"authorization code", e.delegated(alice, 1001, "read").AccessToken, "1001"},
		{"password grant", pwAccess, "pw"},
		{"M2M with a secret", e.svcToken(), "svc"},
		{"M2M by assertion", e.mustAsserted("self-service", alice, ""), "self-service"},
	} {
		if got := payload(t, c.token)["client_id"]; got != c.clientID {
			t.Errorf("%s: client_id %v, want %q", c.what, got, c.clientID)
		}
	}

	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		status, body := get(e.p.URL + path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", path, status)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id_token_signing_alg_values_supported", "subject_types_supported", "authorization_endpoint", "userinfo_endpoint"} {
			if _, ok := doc[k]; ok {
				t.Errorf("%s advertises %s, which tokend does not serve", path, k)
			}
		}
		if rt, ok := doc["response_types_supported"].([]any); !ok || len(rt) != 0 {
			t.Errorf("%s: response_types_supported = %v, want []", path, doc["response_types_supported"])
		}
		methods, _ := doc["token_endpoint_auth_methods_supported"].([]any)
		if !slices.Contains(methods, any("private_key_jwt")) {
			t.Errorf("%s: token_endpoint_auth_methods_supported = %v, want private_key_jwt among them", path, methods)
		}
	}
}

// TestAttack14ReprovisionedUserID: a removal must be permanent. When a
// removed user's id is configured again — the same person back, or (as
// here) a new person given a free id — the removed user's refresh tokens,
// API tokens and access tokens must not come back to life and act for
// whoever holds the id now (tokend records the configured ids in Redis and
// refuses what was issued to an id up to its removal).
func TestAttack14ReprovisionedUserID(t *testing.T) {
	e := newAttackEnv(t, attackSetup{})
	ctx := context.Background()
	carol, carolRefresh := e.login("carol", bobPassword)
	secret, err := e.apiTokens(carol).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "carol's script"}))
	if err != nil {
		t.Fatal(err)
	}

	// carol leaves: everything of hers is refused, as it should be.
	e.restart(attackSetup{drop: map[string]bool{"carol": true}})
	public := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)
	_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: secret.Msg.Token.Secret}))
	wantCode(t, err, connect.CodeUnauthenticated)

	// Later, user id 9 is given to dave, who signs in and makes an M2M token.
	// (Removal times are whole seconds: what is issued in the second of the
	// removal counts as the removed user's, so dave comes a second later.)
	time.Sleep(1100 * time.Millisecond)
	withDave := attackSetup{drop: map[string]bool{"carol": true},
		extraUsers: fmt.Sprintf("  - {id: 9, username: dave, password_hash: %q}\n", hashOf(t, alicePassword))}
	e.restart(withDave)
	public = tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, e.p.URL, jsonOpts...)
	dave, _ := e.login("dave", alicePassword)
	davesM2M := e.mustAsserted("self-service", dave, "dave's")

	// carol's API token buys an access token for user 9...
	bought, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: secret.Msg.Token.Secret}))
	if err == nil {
		t.Errorf("the API token of removed user carol buys an access token for dave (user id 9)")
		// ... which revokes dave's M2M tokens.
		if del, err := e.m2m(bought.Msg.AccessToken).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{})); err == nil {
			t.Errorf("with it, carol blacklisted %d of dave's M2M tokens", del.Msg.BlacklistedCount)
		}
	} else {
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	// dave's own API token works: the id is his now.
	if mine, err := e.apiTokens(dave).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "dave's"})); err != nil {
		t.Errorf("dave's CreateToken: %v", err)
	} else if _, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: mine.Msg.Token.Secret})); err != nil {
		t.Errorf("dave's API token: %v", err)
	}
	// carol's old access token and refresh token pass again, as dave.
	if _, err := e.apiTokens(carol).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})); err == nil {
		t.Errorf("removed user carol's access token lists dave's API tokens")
	}
	if _, err := e.auth().RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: carolRefresh})); err == nil {
		t.Errorf("removed user carol's refresh token refreshes, as dave")
	}
	if found, bl := blacklisted(e.mustList(dave), jti(t, davesM2M)); !found || bl {
		t.Errorf("dave's M2M token: found %v, blacklisted %v", found, bl)
	}
}

// TestAttack15WithdrawnAssertionTrust: when the operator withdraws a
// client's trust in a foreign issuer (the issuer was compromised, say), the
// M2M tokens its assertions bought must die with the trust, at tokend's own
// bearer check and at introspection, not live on until their exp.
func TestAttack15WithdrawnAssertionTrust(t *testing.T) {
	f := startForeign(t)
	e := newAttackEnv(t, attackSetup{foreign: f.URL})
	ctx := context.Background()
	bought := e.mustAsserted("fed", f.Sign(t, map[string]any{"aud": attackIssuer, "sub": "robot"}), "")
	if _, err := listM2M(ctx, e.m2m(bought)); err != nil {
		t.Fatal(err)
	}
	// fed no longer trusts the issuer.
	e.restart(attackSetup{foreign: f.URL, drop: map[string]bool{"fed": true}, extraClients: fmt.Sprintf(
		"  - {id: fed, secret_hash: %q, grant_types: [client_credentials], owner: fed-owner, audiences: [api, %q], scopes: [read], access_token_lifetime: 1h}\n",
		hashOf(t, clientSecret), attackIssuer)})
	_, err := e.asserted("fed", f.Sign(t, map[string]any{"aud": attackIssuer, "sub": "robot"}), "")
	wantCode(t, err, connect.CodeUnauthenticated) // new assertions are refused...
	if _, err := listM2M(ctx, e.m2m(bought)); err == nil {
		t.Errorf("... but a token bought with the withdrawn issuer's assertion still passes the bearer check")
	}
	if m := e.introspect("rs", bought); active(m) {
		t.Errorf("... and is active at introspection: %v", m)
	}
}

// TestAttack16ConfiguredOwnerIsAUserID: a client's configured owner must
// not share a namespace with user ids: with owner "7" (alice), the client's
// secret would list and blacklist the M2M tokens alice minted with her own
// sign-in. tokend refuses such a configuration, naming the key.
func TestAttack16ConfiguredOwnerIsAUserID(t *testing.T) {
	setup := attackSetup{extraClients: fmt.Sprintf(
		"  - {id: ops, secret_hash: %q, grant_types: [client_credentials], owner: \"7\", audiences: [%q], access_token_lifetime: 1h}\n",
		hashOf(t, clientSecret), attackIssuer)}
	out, started := serveOnce(t, setup)
	if started {
		t.Fatal("tokend started with a client whose owner is a user id")
	}
	if !strings.Contains(out, "clients[") || !strings.Contains(out, ".owner: must not be a number") {
		t.Fatalf("tokend refused the configuration, not for the owner:\n%s", out)
	}
}
