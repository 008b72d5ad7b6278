package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	authpb "github.com/tokend/tokend/gen/auth"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/server"
)

const (
	codeSecret   = "code-client-secret"
	codeRedirect = "https://app.example/callback"
	testVerifier = "dBjftJeZ4CVP-mJ0kFAs1VrKcQ1Lu9HFgdMRfMzdD0k"
)

// testChallenge is the S256 challenge of testVerifier.
var testChallenge = s256(testVerifier)

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var codeSecretHash = sync.OnceValue(func() string {
	h, err := passhash.HashBcrypt(codeSecret, 4)
	if err != nil {
		panic(err)
	}
	return h
})

// withCodeClients adds bob (user 8) and the clients of the code flow:
// 1001 and 1004 confidential, 1002 public, 1003 numeric but without the
// authorization_code grant.
func withCodeClients(c *config.Config) {
	withBob(c)
	code := []string{"authorization_code", "refresh_token"}
	c.Clients = append(c.Clients,
		config.Client{ID: "1001", SecretHash: codeSecretHash(), RedirectURIs: []string{codeRedirect, "http://127.0.0.1:9999/cb"}, GrantTypes: code, Scopes: []string{"profile", "read"}},
		config.Client{ID: "1002", RedirectURIs: []string{codeRedirect}, GrantTypes: code, Scopes: []string{"read"}},
		config.Client{ID: "1003", SecretHash: codeSecretHash(), GrantTypes: []string{"refresh_token"}, Scopes: []string{"read"}},
		config.Client{ID: "1004", SecretHash: codeSecretHash(), RedirectURIs: []string{codeRedirect}, GrantTypes: code, Scopes: []string{"read"}},
	)
}

// startCodeServer runs tokend over a real redis-server with the code clients.
func startCodeServer(t *testing.T, edit func(*config.Config)) *testServer {
	t.Helper()
	return start(t, redistest.Start(t).URL, func(c *config.Config) {
		withCodeClients(c)
		if edit != nil {
			edit(c)
		}
	})
}

func codeClient(ts *testServer, token string) authpbconnect.AuthServiceClient {
	opts := []connect.ClientOption{connect.WithProtoJSON()}
	if token != "" {
		opts = append(opts, bearer(token))
	}
	return authpbconnect.NewAuthServiceClient(http.DefaultClient, ts.URL, opts...)
}

func codeRequest(clientID uint32, redirect, scope string) *authpb.GenerateAuthorizationCodeRequest {
	return &authpb.GenerateAuthorizationCodeRequest{UserId: 7, ClientId: clientID, RedirectUri: redirect, Scope: scope}
}

// newCode issues a code for alice to client 1001 (with the test PKCE
// challenge when pkce is set).
func newCode(t *testing.T, c authpbconnect.AuthServiceClient, pkce bool) string {
	t.Helper()
	req := codeRequest(1001, codeRedirect, "read")
	if pkce {
		req.CodeChallenge, req.CodeChallengeMethod = testChallenge, "S256"
	}
	resp, err := c.GenerateAuthorizationCode(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Code
}

func exchangeReq(code string, clientID uint32, secret, redirect, verifier string) *connect.Request[authpb.ExchangeTokenRequest] {
	return connect.NewRequest(&authpb.ExchangeTokenRequest{Code: code, ClientId: clientID, ClientSecret: secret, RedirectUri: redirect, CodeVerifier: verifier})
}

func TestCodeFlow(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.Background()
	c := codeClient(ts, accessToken(t, ts, "alice"))
	gen, err := c.GenerateAuthorizationCode(ctx, connect.NewRequest(codeRequest(1001, codeRedirect, "read profile read")))
	if err != nil {
		t.Fatal(err)
	}
	code := gen.Msg.Code
	// "<session family>.<secret>": the secret alone is 256 random bits.
	if fam, secret, ok := strings.Cut(code, "."); !ok || len(fam) != 22 {
		t.Fatalf("code %q: want <family>.<secret>", code)
	} else if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) < 16 {
		t.Fatalf("code %q: want ≥ 128 random bits, base64url", code)
	}
	if br := gen.Msg.BaseResp; br.GetCode() != 0 || br.GetMessage() != "OK" {
		t.Fatalf("base_resp %v", br)
	}
	assertNotInRedis(t, ts.cfg.Redis.URL, code)

	before := time.Now()
	ex, err := codeClient(ts, "").ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	if err != nil {
		t.Fatal(err)
	}
	m := ex.Msg
	if m.BaseResp.GetCode() != 0 || m.BaseResp.GetMessage() != "OK" || m.AccessToken == "" || m.RefreshToken == "" {
		t.Fatalf("exchange response %v", m)
	}
	near := func(unix int64, want time.Duration) bool {
		d := time.Unix(unix, 0).Sub(before)
		return d > want-5*time.Second && d < want+5*time.Second
	}
	if !near(m.AccessExpireAt, ts.cfg.Tokens.AccessTTL.D()) || !near(m.RefreshExpireAt, ts.cfg.Tokens.RefreshTTL.D()) {
		t.Errorf("expiry times %d, %d: want now + access_ttl, now + refresh_ttl", m.AccessExpireAt, m.RefreshExpireAt)
	}
	claims := verifyWithJWKS(t, ts, m.AccessToken)
	aud, _ := claims["aud"].([]any)
	if claims["sub"] != "7" || claims["client_id"] != "1001" || claims["scope"] != "read profile" || claims["kind"] != "user" ||
		!slices.Contains(aud, any(ts.URL)) || !slices.Contains(aud, any("1001")) {
		t.Fatalf("claims %v", claims)
	}
	if exp, _ := claims["exp"].(float64); int64(exp) != m.AccessExpireAt {
		t.Errorf("access_expire_at %d, token exp %v", m.AccessExpireAt, exp)
	}

	// The refresh token rotates with auth.v1 like any other, the confidential
	// client authenticating (RFC 6749 §6).
	rt, err := protocols["connect+json"](ts.URL).RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{
		RefreshToken: m.RefreshToken, ClientId: "1001", ClientSecret: codeSecret}))
	if err != nil {
		t.Fatalf("auth.v1 RefreshToken with the exchanged refresh token: %v", err)
	}
	claims = verifyWithJWKS(t, ts, rt.Msg.AccessToken)
	if claims["sub"] != "7" || claims["client_id"] != "1001" || claims["scope"] != "read profile" {
		t.Fatalf("claims after refresh %v", claims)
	}
	// The access token is active to its client, and delegated: it manages
	// none of the user's credentials (authz.Table).
	if got := introspectAs(t, ts, "1001", codeSecret, m.AccessToken); got["active"] != true {
		t.Fatalf("exchanged access token: introspection %v", got)
	}
	_, err = apiClient(ts, m.AccessToken).ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)
	if strings.Contains(ts.logs.String(), code) || strings.Contains(ts.logs.String(), codeSecret) {
		t.Error("a code or client secret reached the log")
	}
}

func TestCodeGenerationErrors(t *testing.T) {
	ts := startCodeServer(t, nil)
	c := codeClient(ts, accessToken(t, ts, "alice"))
	pkce := func(r *authpb.GenerateAuthorizationCodeRequest, challenge, method string) *authpb.GenerateAuthorizationCodeRequest {
		r.CodeChallenge, r.CodeChallengeMethod = challenge, method
		return r
	}
	cases := []struct {
		name string
		req  *authpb.GenerateAuthorizationCodeRequest
		code connect.Code
	}{
		{"unknown client", codeRequest(4242, codeRedirect, "read"), connect.CodeInvalidArgument},
		{"no client", codeRequest(0, codeRedirect, "read"), connect.CodeInvalidArgument},
		{"client without the grant", codeRequest(1003, codeRedirect, "read"), connect.CodeInvalidArgument},
		{"redirect not registered", codeRequest(1001, codeRedirect+"/x", "read"), connect.CodeInvalidArgument},
		{"redirect differs in case", codeRequest(1001, strings.ToUpper(codeRedirect), "read"), connect.CodeInvalidArgument},
		{"no redirect", codeRequest(1001, "", "read"), connect.CodeInvalidArgument},
		{"scope outside the client's", codeRequest(1001, codeRedirect, "read admin"), connect.CodeInvalidArgument},
		{"plain PKCE", pkce(codeRequest(1001, codeRedirect, "read"), testVerifier, "plain"), connect.CodeInvalidArgument},
		{"challenge without method (plain)", pkce(codeRequest(1001, codeRedirect, "read"), testChallenge, ""), connect.CodeInvalidArgument},
		{"method without challenge", pkce(codeRequest(1001, codeRedirect, "read"), "", "S256"), connect.CodeInvalidArgument},
		{"short challenge", pkce(codeRequest(1001, codeRedirect, "read"), testChallenge[:42], "S256"), connect.CodeInvalidArgument},
		{"public client without PKCE", codeRequest(1002, codeRedirect, "read"), connect.CodeInvalidArgument},
		{"no user", &authpb.GenerateAuthorizationCodeRequest{ClientId: 1001, RedirectUri: codeRedirect}, connect.CodeInvalidArgument},
		{"another user", &authpb.GenerateAuthorizationCodeRequest{UserId: 8, ClientId: 1001, RedirectUri: codeRedirect}, connect.CodePermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.GenerateAuthorizationCode(context.Background(), connect.NewRequest(tc.req))
			wantCode(t, err, tc.code)
		})
	}
	// The same request with S256 is fine, and a public client with PKCE too.
	if _, err := c.GenerateAuthorizationCode(context.Background(), connect.NewRequest(pkce(codeRequest(1002, codeRedirect, "read"), testChallenge, "S256"))); err != nil {
		t.Errorf("public client with S256: %v", err)
	}
}

func TestCodeBearer(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.Background()
	req := func() *connect.Request[authpb.GenerateAuthorizationCodeRequest] {
		return connect.NewRequest(codeRequest(1001, codeRedirect, "read"))
	}
	_, err := codeClient(ts, "").GenerateAuthorizationCode(ctx, req())
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = codeClient(ts, "not-a-jwt").GenerateAuthorizationCode(ctx, req())
	wantCode(t, err, connect.CodeUnauthenticated)
	// Bob's token cannot issue codes for alice (user 7).
	_, err = codeClient(ts, accessToken(t, ts, "bob")).GenerateAuthorizationCode(ctx, req())
	wantCode(t, err, connect.CodePermissionDenied)
	// Nor can a token that was issued to a client, even alice's.
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	ex, err := alice.ExchangeToken(ctx, exchangeReq(newCode(t, alice, false), 1001, codeSecret, codeRedirect, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = codeClient(ts, ex.Msg.AccessToken).GenerateAuthorizationCode(ctx, req())
	wantCode(t, err, connect.CodePermissionDenied)
}

func TestCodeExchangeErrors(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.Background()
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	anon := codeClient(ts, "")
	code := newCode(t, alice, false)
	cases := []struct {
		name      string
		req       *connect.Request[authpb.ExchangeTokenRequest]
		code      connect.Code
		badClient bool
	}{
		{"wrong secret", exchangeReq(code, 1001, "nope", codeRedirect, ""), connect.CodeUnauthenticated, true},
		{"no secret", exchangeReq(code, 1001, "", codeRedirect, ""), connect.CodeUnauthenticated, true},
		{"unknown client", exchangeReq(code, 4242, codeSecret, codeRedirect, ""), connect.CodeUnauthenticated, true},
		{"no client", exchangeReq(code, 0, codeSecret, codeRedirect, ""), connect.CodeUnauthenticated, true},
		{"another client's code", exchangeReq(code, 1004, codeSecret, codeRedirect, ""), connect.CodeUnauthenticated, false},
		{"client without the grant", exchangeReq(code, 1003, codeSecret, codeRedirect, ""), connect.CodePermissionDenied, false},
		{"redirect mismatch", exchangeReq(code, 1001, codeSecret, "http://127.0.0.1:9999/cb", ""), connect.CodeInvalidArgument, false},
		{"no redirect", exchangeReq(code, 1001, codeSecret, "", ""), connect.CodeInvalidArgument, false},
		{"verifier for a code without challenge", exchangeReq(code, 1001, codeSecret, codeRedirect, testVerifier), connect.CodeInvalidArgument, false},
		{"unknown code", exchangeReq(strings.Repeat("A", 43), 1001, codeSecret, codeRedirect, ""), connect.CodeUnauthenticated, false},
		{"garbage code", exchangeReq("../../etc/passwd{x}", 1001, codeSecret, codeRedirect, ""), connect.CodeUnauthenticated, false},
		{"no code", exchangeReq("", 1001, codeSecret, codeRedirect, ""), connect.CodeInvalidArgument, false},
	}
	var badClientMsgs []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anon.ExchangeToken(ctx, tc.req)
			wantCode(t, err, tc.code)
			if tc.badClient {
				badClientMsgs = append(badClientMsgs, err.(*connect.Error).Message())
			}
		})
	}
	for _, m := range badClientMsgs {
		if m != badClientMsgs[0] {
			t.Errorf("client authentication failures differ: %q", badClientMsgs)
		}
	}
	// None of the failures burnt the code.
	if _, err := anon.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, "")); err != nil {
		t.Fatalf("the code after failed exchanges: %v", err)
	}
}

func TestCodeExpired(t *testing.T) {
	ts := startCodeServer(t, func(c *config.Config) { c.Tokens.CodeTTL = config.Duration(time.Second) })
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	code := newCode(t, alice, false)
	time.Sleep(1200 * time.Millisecond)
	_, err := alice.ExchangeToken(context.Background(), exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	wantCode(t, err, connect.CodeUnauthenticated)
}

// assertSessionRevoked checks that a refresh token no longer refreshes and
// its access token no longer passes the bearer check.
// assertSessionRevoked checks that a session of client 1001 is over: its
// refresh token is refused (with the client's credentials) and its access
// token is inactive to the client (delegated tokens call no procedure of
// tokend's own, so introspection is where tokend answers for them).
func assertSessionRevoked(t *testing.T, ts *testServer, access, refresh string) {
	t.Helper()
	ctx := context.Background()
	_, err := protocols["connect+json"](ts.URL).RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{
		RefreshToken: refresh, ClientId: "1001", ClientSecret: codeSecret}))
	wantCode(t, err, connect.CodeUnauthenticated)
	if got := introspectAs(t, ts, "1001", codeSecret, access); got["active"] != false {
		t.Errorf("access token of a revoked session: introspection %v, want inactive", got)
	}
}

func TestCodeReuseRevokesSession(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.Background()
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	code := newCode(t, alice, false)
	first, err := alice.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	wantCode(t, err, connect.CodeUnauthenticated)
	assertSessionRevoked(t, ts, first.Msg.AccessToken, first.Msg.RefreshToken)

	// A second use by another client is refused too but revokes nothing:
	// only a replay that passes the client and PKCE checks proves the code
	// was stolen together with what redeems it.
	code = newCode(t, alice, false)
	second, err := alice.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.ExchangeToken(ctx, exchangeReq(code, 1004, codeSecret, codeRedirect, ""))
	wantCode(t, err, connect.CodeUnauthenticated)
	if _, err := protocols["connect+json"](ts.URL).RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{
		RefreshToken: second.Msg.RefreshToken, ClientId: "1001", ClientSecret: codeSecret})); err != nil {
		t.Errorf("another client's attempt revoked the session: %v", err)
	}
}

func TestCodeConcurrentExchanges(t *testing.T) {
	ts := startCodeServer(t, nil)
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	code := newCode(t, alice, true)
	const n = 50
	resps := make([]*authpb.ExchangeTokenResponse, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := codeClient(ts, "").ExchangeToken(context.Background(), exchangeReq(code, 1001, codeSecret, codeRedirect, testVerifier))
			errs[i] = err
			if err == nil {
				resps[i] = r.Msg
			}
		})
	}
	close(start)
	wg.Wait()
	var won *authpb.ExchangeTokenResponse
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			won = resps[i]
		case connect.CodeOf(err) != connect.CodeUnauthenticated:
			t.Errorf("exchange %d: %v, want unauthenticated", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent exchanges succeeded, want exactly 1", wins, n)
	}
	// The others were replays: the winner's session is revoked, whichever
	// order the replays and the winner's session creation took.
	assertSessionRevoked(t, ts, won.AccessToken, won.RefreshToken)
}

func TestCodePKCE(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.Background()
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	anon := codeClient(ts, "")

	code := newCode(t, alice, true)
	for name, v := range map[string]string{
		"missing verifier":      "",
		"wrong verifier":        strings.Repeat("a", 43),
		"challenge as verifier": testChallenge,
	} {
		_, err := anon.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, v))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
	for name, v := range map[string]string{
		"short verifier":        testVerifier[:42],
		"long verifier":         strings.Repeat("a", 129),
		"verifier with a space": testVerifier[:40] + " abc",
	} {
		_, err := anon.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, v))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
	// The right verifier still works: failures do not burn the code.
	if _, err := anon.ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, testVerifier)); err != nil {
		t.Fatalf("right verifier: %v", err)
	}

	// A public client: no secret, a verifier of its own.
	verifier := strings.Repeat("x", 20) + "-._~" + strings.Repeat("Y", 104) // 128 characters
	req := codeRequest(1002, codeRedirect, "read")
	req.CodeChallenge, req.CodeChallengeMethod = s256(verifier), "S256"
	gen, err := alice.GenerateAuthorizationCode(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.ExchangeToken(ctx, exchangeReq(gen.Msg.Code, 1002, "", codeRedirect, ""))
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = anon.ExchangeToken(ctx, exchangeReq(gen.Msg.Code, 1002, "a-secret", codeRedirect, verifier))
	wantCode(t, err, connect.CodeUnauthenticated) // public clients have no secret to send
	ex, err := anon.ExchangeToken(ctx, exchangeReq(gen.Msg.Code, 1002, "", codeRedirect, verifier))
	if err != nil {
		t.Fatalf("public client with verifier: %v", err)
	}
	if c := verifyWithJWKS(t, ts, ex.Msg.AccessToken); c["client_id"] != "1002" {
		t.Errorf("claims %v", c)
	}
}

func TestCodeRedisDown(t *testing.T) {
	redis := redistest.Start(t)
	ts := start(t, redis.URL, withCodeClients)
	alice := codeClient(ts, accessToken(t, ts, "alice"))
	code := newCode(t, alice, false)
	redis.Stop()
	_, err := alice.ExchangeToken(context.Background(), exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	wantCode(t, err, connect.CodeUnavailable)
	_, err = alice.GenerateAuthorizationCode(context.Background(), connect.NewRequest(codeRequest(1001, codeRedirect, "read")))
	wantCode(t, err, connect.CodeUnavailable)
}

// TestDevConfigCodeClient runs the code flow with the demo user and code
// client that `go run .` prints.
func TestDevConfigCodeClient(t *testing.T) {
	dev, cred, err := server.DevConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, "", func(c *config.Config) { c.Users, c.Clients = dev.Users, dev.Clients })
	ctx := context.Background()
	lr, err := protocols["connect+json"](ts.URL).Token(ctx, login(cred.Username, cred.Password))
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(cred.CodeClientID, 10, 32)
	if err != nil {
		t.Fatalf("demo code client id %q is not numeric", cred.CodeClientID)
	}
	c := codeClient(ts, lr.Msg.AccessToken)
	gen, err := c.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
		UserId: cred.UserID, ClientId: uint32(id), RedirectUri: cred.RedirectURI, Scope: "read",
		CodeChallenge: testChallenge, CodeChallengeMethod: "S256",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExchangeToken(ctx, exchangeReq(gen.Msg.Code, uint32(id), cred.CodeClientSecret, cred.RedirectURI, testVerifier)); err != nil {
		t.Fatalf("exchange as the demo code client: %v", err)
	}
}
