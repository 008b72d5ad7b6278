package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokend/tokend/config"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore/redistest"
)

const m2mSecret = "m2m-secret-for-tests"

// foreignIssuer is another OAuth server, trusted by one client: it serves a
// discovery document and a JWKS with one Ed25519 key.
type foreignIssuer struct {
	URL  string
	priv ed25519.PrivateKey
}

func startForeignIssuer(t *testing.T) *foreignIssuer {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f := &foreignIssuer{priv: priv}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "OKP", "crv": "Ed25519", "kid": "foreign-1", "use": "sig",
			"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// sign makes an assertion from this issuer.
func (f *foreignIssuer) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	claims["iss"] = f.URL
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = "foreign-1"
	s, err := tok.SignedString(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startM2M runs tokend with the M2M clients of these tests: "svc" (secret,
// owner svc-owner, 1h max), "viaassert"
// (trusts tokend and the foreign issuer, owner from the assertion), and
// "other" (another owner).
func startM2M(t *testing.T, foreign string, edit func(*config.Config)) *testServer {
	t.Helper()
	secretHash := m2mHash()
	redis := redistest.Start(t)
	return start(t, redis.URL, func(c *config.Config) {
		base := config.Client{SecretHash: secretHash, GrantTypes: []string{"client_credentials"},
			Audiences: []string{"api", "billing", c.Issuer}, Scopes: []string{"read", "write"}, AccessTokenLifetime: config.Duration(time.Hour)}
		svc := base
		svc.ID, svc.Owner = "svc", "svc-owner"
		svc.ResourceAudiences = []string{c.Issuer} // a resource server for tokend's own tokens: it introspects them
		other := base
		other.ID, other.Owner = "other", "other-owner"
		viaAssert := base
		viaAssert.ID, viaAssert.SecretHash = "viaassert", ""
		viaAssert.AssertionIssuers = []string{c.Issuer}
		if foreign != "" {
			viaAssert.AssertionIssuers = append(viaAssert.AssertionIssuers, foreign)
		}
		noGrant := base
		noGrant.ID, noGrant.Owner, noGrant.GrantTypes = "nogrant", "svc-owner", []string{"refresh_token"}
		viaAud := viaAssert
		viaAud.ID, viaAud.AssertionAudiences = "viaaud", []string{"https://tokend.test/m2m", "tokend"}
		c.Clients = append(c.Clients, svc, other, viaAssert, noGrant, viaAud)
		if edit != nil {
			edit(c)
		}
	})
}

// m2mHash is the bcrypt (cost 4: fast tests) hash of m2mSecret.
var m2mHash = sync.OnceValue(func() string {
	h, err := passhash.HashBcrypt(m2mSecret, 4)
	if err != nil {
		panic(err)
	}
	return h
})

func m2mClient(ts *testServer, opts ...connect.ClientOption) m2mpbconnect.M2MOAuthServiceClient {
	return m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, ts.URL, append(opts, connect.WithProtoJSON())...)
}

func createM2M(ts *testServer, m *m2mpb.CreateTokenRequest) (*m2mpb.CreateTokenResponse, error) {
	if m.GrantType == "" {
		m.GrantType = "client_credentials"
	}
	resp, err := m2mClient(ts).CreateToken(context.Background(), connect.NewRequest(m))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// listM2M returns every token the bearer's owner sees.
func listM2M(t *testing.T, ts *testServer, token string, req *m2mpb.GetTokensRequest) ([]*m2mpb.Token, error) {
	t.Helper()
	// A streaming call: the bearer goes on the HTTP request (the unary
	// interceptor of bearer() does not wrap streams).
	hc := &http.Client{Transport: bearerTransport(token)}
	c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, connect.WithProtoJSON())
	stream, err := c.GetTokens(context.Background(), connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	var out []*m2mpb.Token
	for stream.Receive() {
		out = append(out, stream.Msg())
	}
	return out, stream.Err()
}

func TestM2MCreateTokenRules(t *testing.T) {
	foreign := startForeignIssuer(t)
	ts := startM2M(t, foreign.URL, nil)
	now := time.Now()
	secret := func(m *m2mpb.CreateTokenRequest) *m2mpb.CreateTokenRequest {
		m.ClientId, m.ClientSecret = "svc", m2mSecret
		return m
	}

	t.Run("secret", func(t *testing.T) {
		got, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Audience: []string{"api"}, TokenName: "deploys"}))
		if err != nil {
			t.Fatal(err)
		}
		if got.TokenType != "Bearer" || got.ExpiresIn < 3590 || got.ExpiresIn > 3600 || !slices.Equal(got.Scope, []string{"read", "write"}) {
			t.Fatalf("response %v", got)
		}
		claims := verifyWithJWKS(t, ts, got.AccessToken)
		aud, _ := claims["aud"].([]any)
		if len(aud) != 1 || aud[0] != "api" || claims["sub"] != "svc" || claims["client_id"] != "svc" ||
			claims["owner"] != "svc-owner" || claims["name"] != "deploys" || claims["kind"] != "client" ||
			claims["scope"] != "read write" || claims["jti"] == "" || claims["exp"] == nil || claims["iat"] == nil {
			t.Fatalf("claims %v", claims)
		}
	})
	t.Run("bad secret", func(t *testing.T) {
		_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: "wrong"})
		wantCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("unknown client", func(t *testing.T) {
		_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "nobody", ClientSecret: m2mSecret})
		wantCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("no credential", func(t *testing.T) {
		for _, id := range []string{"svc", "viaassert", ""} {
			_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: id})
			wantCode(t, err, connect.CodeUnauthenticated)
		}
	})
	t.Run("wrong grant", func(t *testing.T) {
		_, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{GrantType: "password"}))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "nogrant", ClientSecret: m2mSecret})
		wantCode(t, err, connect.CodePermissionDenied)
	})
	t.Run("audience outside", func(t *testing.T) {
		_, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Audience: []string{"api", "admin"}}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
	t.Run("scope outside", func(t *testing.T) {
		_, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Scope: []string{"read", "delete"}}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
	t.Run("scope subset", func(t *testing.T) {
		got, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Scope: []string{"read"}}))
		if err != nil || !slices.Equal(got.Scope, []string{"read"}) {
			t.Fatalf("%v, %v", got, err)
		}
		if c := verifyWithJWKS(t, ts, got.AccessToken); c["scope"] != "read" {
			t.Fatalf("scope claim %v", c["scope"])
		}
	})
	t.Run("scope empty is all", func(t *testing.T) {
		got, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{}))
		if err != nil || !slices.Equal(got.Scope, []string{"read", "write"}) {
			t.Fatalf("%v, %v", got, err)
		}
		aud, _ := verifyWithJWKS(t, ts, got.AccessToken)["aud"].([]any)
		if len(aud) != 3 {
			t.Fatalf("no audience asked: want all the client's, got %v", aud)
		}
	})
	t.Run("expiration past", func(t *testing.T) {
		_, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Expiration: now.Add(-time.Minute).Unix()}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
	t.Run("expiration too far", func(t *testing.T) {
		_, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Expiration: now.Add(2 * time.Hour).Unix()}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
	t.Run("expiration given", func(t *testing.T) {
		exp := now.Add(10 * time.Minute).Unix()
		got, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{Expiration: exp}))
		if err != nil {
			t.Fatal(err)
		}
		if c := verifyWithJWKS(t, ts, got.AccessToken); c["exp"] != float64(exp) {
			t.Fatalf("exp %v, want %d", c["exp"], exp)
		}
	})
	t.Run("expiration absent: the client's lifetime", func(t *testing.T) {
		got, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if got.ExpiresIn < 3590 || got.ExpiresIn > 3600 {
			t.Fatalf("expires_in %d, want the client's 1h", got.ExpiresIn)
		}
		if c := verifyWithJWKS(t, ts, got.AccessToken); c["exp"] == nil {
			t.Fatal("an M2M token without exp")
		}
	})

	assert := func(assertion string) (*m2mpb.CreateTokenResponse, error) {
		return createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "viaassert",
			ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: assertion})
	}
	t.Run("assertion from tokend", func(t *testing.T) {
		user := accessToken(t, ts, "alice")
		got, err := assert(user)
		if err != nil {
			t.Fatal(err)
		}
		if c := verifyWithJWKS(t, ts, got.AccessToken); c["owner"] != "7" || c["sub"] != "viaassert" {
			t.Fatalf("claims %v: want owner 7 (alice, from the assertion's sub)", c)
		}
		toks, err := listM2M(t, ts, user, &m2mpb.GetTokensRequest{})
		if err != nil || len(toks) != 1 {
			t.Fatalf("alice lists %v, %v", toks, err)
		}
		orig := toks[0].OriginalTokenClaims.GetStructValue().AsMap()
		if orig["sub"] != "7" || orig["kind"] != "user" {
			t.Fatalf("original_token_claims %v", orig)
		}
	})
	t.Run("assertion that is an M2M token of tokend", func(t *testing.T) {
		// Its sub is a client id: it must not become an owner.
		m2mTok, err := createM2M(ts, secret(&m2mpb.CreateTokenRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = assert(m2mTok.AccessToken)
		wantCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("assertion from a trusted foreign issuer", func(t *testing.T) {
		claims := jwt.MapClaims{"sub": "robot-9", "exp": now.Add(time.Minute).Unix(), "aud": ts.URL, "jti": "f-1"}
		a := foreign.sign(t, claims)
		got, err := assert(a)
		if err != nil {
			t.Fatal(err)
		}
		// The owner is qualified by its issuer: never a tokend user id, nor
		// another issuer's subject.
		if c := verifyWithJWKS(t, ts, got.AccessToken); c["owner"] != foreign.URL+"#robot-9" {
			t.Fatalf("owner %v", c["owner"])
		}
		// Accepted once (RFC 7523 §3): a replay is refused, on every replica.
		_, err = assert(a)
		wantCode(t, err, connect.CodeUnauthenticated)
		for name, edit := range map[string]func(jwt.MapClaims){
			"no jti":         func(c jwt.MapClaims) { delete(c, "jti") },
			"no owner claim": func(c jwt.MapClaims) { delete(c, "sub"); c["jti"] = "f-2" },
			"owner not text": func(c jwt.MapClaims) { c["sub"] = 7; c["jti"] = "f-3" },
			"no aud":         func(c jwt.MapClaims) { delete(c, "aud"); c["jti"] = "f-4" },
			"another aud":    func(c jwt.MapClaims) { c["aud"] = "https://api.example"; c["jti"] = "f-5" },
		} {
			c := maps.Clone(claims)
			edit(c)
			_, err := assert(foreign.sign(t, c))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s: got %v, want unauthenticated", name, err)
			}
		}
		// The token endpoint's URL names tokend as well as its issuer.
		c := maps.Clone(claims)
		c["aud"], c["jti"] = ts.URL+"/oauth/token", "f-6"
		if _, err := assert(foreign.sign(t, c)); err != nil {
			t.Errorf("aud naming the token endpoint: %v", err)
		}
	})
	t.Run("assertion from an untrusted issuer", func(t *testing.T) {
		untrusted := startForeignIssuer(t)
		_, err := assert(untrusted.sign(t, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Minute).Unix()}))
		wantCode(t, err, connect.CodeUnauthenticated)
		// Nor does a trusted issuer's name on a token the untrusted one signed.
		forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": foreign.URL, "sub": "x", "exp": now.Add(time.Minute).Unix()})
		forged.Header["kid"] = "foreign-1"
		s, _ := forged.SignedString(untrusted.priv)
		_, err = assert(s)
		wantCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("expired assertion", func(t *testing.T) {
		_, err := assert(foreign.sign(t, jwt.MapClaims{"sub": "x", "exp": now.Add(-time.Hour).Unix()}))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = assert(foreign.sign(t, jwt.MapClaims{"sub": "x"})) // no exp at all
		wantCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("assertion audience, where the client names one", func(t *testing.T) {
		assertAud := func(assertion string) error {
			_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "viaaud",
				ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: assertion})
			return err
		}
		exp := now.Add(time.Minute).Unix()
		for name, aud := range map[string]any{"string": "tokend", "array": []string{"other", "https://tokend.test/m2m"}} {
			if err := assertAud(foreign.sign(t, jwt.MapClaims{"sub": "robot-9", "exp": exp, "aud": aud, "jti": "aud-" + name})); err != nil {
				t.Errorf("aud as %s naming an accepted value: %v", name, err)
			}
		}
		for name, claims := range map[string]jwt.MapClaims{
			"no aud":        {"sub": "robot-9", "exp": exp, "jti": "aud-1"},
			"another aud":   {"sub": "robot-9", "exp": exp, "aud": []string{"api", "https://tokend.test"}, "jti": "aud-2"},
			"aud not texts": {"sub": "robot-9", "exp": exp, "aud": 7, "jti": "aud-3"},
		} {
			err := assertAud(foreign.sign(t, claims))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s: got %v, want unauthenticated", name, err)
			}
		}
		// tokend's own user token names tokend's issuer: accepted too.
		if err := assertAud(accessToken(t, ts, "alice")); err != nil {
			t.Errorf("tokend's own token: %v", err)
		}
		// An extra value is accepted only by the client that names it.
		if _, err := assert(foreign.sign(t, jwt.MapClaims{"sub": "robot-9", "exp": exp, "aud": "tokend", "jti": "aud-4"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("another client's extra audience: %v, want unauthenticated", err)
		}
	})
	t.Run("assertion of a client that trusts no issuer", func(t *testing.T) {
		_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc",
			ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: accessToken(t, ts, "alice")})
		wantCode(t, err, connect.CodeUnauthenticated)
	})
}

func TestM2MOwnersListAndBlacklist(t *testing.T) {
	ts := startM2M(t, "", nil)
	ctx := context.Background()
	mk := func(client string) (string, string) {
		got, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: client, ClientSecret: m2mSecret})
		if err != nil {
			t.Fatal(err)
		}
		return got.AccessToken, verifyWithJWKS(t, ts, got.AccessToken)["jti"].(string)
	}
	a1, id1 := mk("svc")
	a2, id2 := mk("svc")
	b1, idB := mk("other")

	// Each owner sees only their own, whichever of their tokens asks.
	mine, err := listM2M(t, ts, a2, &m2mpb.GetTokensRequest{})
	if err != nil || len(mine) != 2 {
		t.Fatalf("svc-owner lists %v, %v", mine, err)
	}
	theirs, err := listM2M(t, ts, b1, &m2mpb.GetTokensRequest{IdFilter: []string{id1, idB}})
	if err != nil || len(theirs) != 1 || theirs[0].Id != idB || theirs[0].Owner != "other-owner" {
		t.Fatalf("other-owner with a filter naming svc-owner's token: %v, %v", theirs, err)
	}
	// Another owner cannot blacklist svc-owner's token by naming it.
	del, err := m2mClient(ts, bearer(b1)).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{id1}}))
	if err != nil || del.Msg.BlacklistedCount != 0 {
		t.Fatalf("other-owner blacklists svc-owner's: %v, %v", del, err)
	}
	if _, err := listM2M(t, ts, a1, &m2mpb.GetTokensRequest{}); err != nil {
		t.Fatalf("a1 refused after a foreign delete: %v", err)
	}

	// svc-owner blacklists token 1: it is refused as a bearer and inactive
	// for introspection, and listed only on request, with its flag.
	del, err = m2mClient(ts, bearer(a2)).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{id1}}))
	if err != nil || del.Msg.BlacklistedCount != 1 || del.Msg.DeletedCount != 0 {
		t.Fatalf("blacklist: %v, %v", del, err)
	}
	_, err = listM2M(t, ts, a1, &m2mpb.GetTokensRequest{})
	wantCode(t, err, connect.CodeUnauthenticated)
	if active := introspect(t, ts, "svc", a1); active["active"] != false {
		t.Fatalf("introspection of a blacklisted token: %v", active)
	}
	if active := introspect(t, ts, "svc", a2); active["active"] != true || active["owner"] != "svc-owner" {
		t.Fatalf("introspection of a live token: %v", active)
	}
	live, _ := listM2M(t, ts, a2, &m2mpb.GetTokensRequest{})
	all, _ := listM2M(t, ts, a2, &m2mpb.GetTokensRequest{IncludeBlacklisted: true})
	if len(live) != 1 || live[0].Id != id2 || len(all) != 2 {
		t.Fatalf("live %v, all %v", live, all)
	}
	for _, tok := range all {
		if tok.Id == id1 && (tok.Blacklisted == nil || !tok.Blacklisted.Flag || tok.Blacklisted.Timestamp == 0 || tok.Version != 2) {
			t.Fatalf("blacklisted token listed as %v", tok)
		}
	}
	// Delete-all blacklists the rest; blacklisting is not counted twice.
	del, err = m2mClient(ts, bearer(a2)).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
	if err != nil || del.Msg.BlacklistedCount != 1 {
		t.Fatalf("delete all: %v, %v", del, err)
	}
	_, err = listM2M(t, ts, a2, &m2mpb.GetTokensRequest{})
	wantCode(t, err, connect.CodeUnauthenticated) // a2 is blacklisted too now
}

func introspect(t *testing.T, ts *testServer, client, token string) map[string]any {
	t.Helper()
	return introspectAs(t, ts, client, m2mSecret, token)
}

// introspectAs introspects token as client with secret.
func introspectAs(t *testing.T, ts *testServer, client, secret, token string) map[string]any {
	t.Helper()
	resp := postTokenAs(t, ts, "/oauth/introspect", client, secret, token)
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("introspect: %d %v", resp.StatusCode, out)
	}
	return out
}

// postToken POSTs token to an RFC 7662/7009 endpoint as client (HTTP Basic,
// the M2M test secret).
func postToken(t *testing.T, ts *testServer, path, client, token string) *http.Response {
	t.Helper()
	return postTokenAs(t, ts, path, client, m2mSecret, token)
}

func postTokenAs(t *testing.T, ts *testServer, path, client, secret, token string) *http.Response {
	t.Helper()
	form := url.Values{"token": {token}}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestIntrospectionAndRevocation(t *testing.T) {
	ts := startM2M(t, "", nil)
	got, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret})
	if err != nil {
		t.Fatal(err)
	}
	user := accessToken(t, ts, "alice")
	if a := introspect(t, ts, "svc", user); a["active"] != true || a["sub"] != "7" || a["kind"] != "user" {
		t.Fatalf("user token: %v", a)
	}
	// A client sees only tokens issued to it or whose audience it serves
	// (RFC 7662 §4): "other" serves neither.
	for _, tok := range []string{user, got.AccessToken} {
		if a := introspect(t, ts, "other", tok); a["active"] != false || len(a) != 1 {
			t.Errorf("another client introspects a token it does not serve: %v", a)
		}
	}
	for _, tok := range []string{"garbage", user + "x", got.AccessToken[:len(got.AccessToken)-4] + "AAAA"} {
		if a := introspect(t, ts, "svc", tok); a["active"] != false {
			t.Fatalf("%q: %v", tok, a)
		}
	}
	// Client authentication is required.
	form := url.Values{"token": {user}}
	resp, err := http.Post(ts.URL+"/oauth/introspect", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("introspection without client auth: %d", resp.StatusCode)
	}

	revoke := func(client, token string) int {
		resp := postToken(t, ts, "/oauth/revoke", client, token)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another client's token: 200, and nothing happens (RFC 7009 §2.1).
	if code := revoke("other", got.AccessToken); code != 200 {
		t.Fatalf("revoke by another client: %d", code)
	}
	if a := introspect(t, ts, "svc", got.AccessToken); a["active"] != true {
		t.Fatal("another client revoked svc's token")
	}
	if code := revoke("svc", got.AccessToken); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if a := introspect(t, ts, "svc", got.AccessToken); a["active"] != false {
		t.Fatal("revoked token still active")
	}
	if code := revoke("svc", "unknown-token"); code != 200 {
		t.Fatalf("revoke of an unknown token: %d", code)
	}

	var doc map[string]any
	getJSON(t, ts.URL+"/.well-known/openid-configuration", &doc)
	grants, _ := doc["grant_types_supported"].([]any)
	if doc["introspection_endpoint"] != ts.URL+"/oauth/introspect" || doc["revocation_endpoint"] != ts.URL+"/oauth/revoke" ||
		!slices.Contains(grants, any("client_credentials")) {
		t.Fatalf("discovery: %v", doc)
	}
}

func TestM2MOAuthClientCredentialsLibrary(t *testing.T) {
	ts := startM2M(t, "", nil)
	cfg := clientcredentials.Config{ClientID: "svc", ClientSecret: m2mSecret, TokenURL: ts.URL + "/oauth/token",
		Scopes: []string{"read"}, EndpointParams: url.Values{"audience": {"billing"}, "token_name": {"from x/oauth2"}}}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := verifyWithJWKS(t, ts, tok.AccessToken)
	aud, _ := c["aud"].([]any)
	if tok.TokenType != "Bearer" || c["scope"] != "read" || len(aud) != 1 || aud[0] != "billing" || c["name"] != "from x/oauth2" ||
		time.Until(tok.Expiry) < 59*time.Minute {
		t.Fatalf("token %+v, claims %v", tok, c)
	}
	bad := cfg
	bad.ClientSecret = "wrong"
	_, err = bad.Token(context.Background())
	var re *oauth2.RetrieveError
	if err == nil || !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestM2MSweepBoundsStorage(t *testing.T) {
	ts := startM2M(t, "", nil)
	for range 50 {
		if _, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret,
			Expiration: time.Now().Add(2 * time.Second).Unix()}); err != nil {
			t.Fatal(err)
		}
	}
	store := ts.srv.Store()
	ctx := context.Background()
	// The two records of the configured users and clients stay, whatever
	// the tokens do.
	count := func() int64 {
		n, err := store.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n - 2
	}
	if n := count(); n < 52 {
		t.Fatalf("%d keys after 50 tokens", n)
	}
	time.Sleep(3 * time.Second)
	if _, err := store.SweepM2M(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		keys, _ := store.Client().Keys(ctx, "*").Result()
		t.Fatalf("%d keys left after expiry and the sweep: %v", n, keys)
	}
}

type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestM2MGetTokensRevocationRidesAlong: GetTokens' revocation check goes in
// the pipeline of its records read (authn.Middleware.Defer); a revoked
// bearer still gets unauthenticated and none of the records, in every
// protocol, whether its token was blacklisted or its session logged out.
func TestM2MGetTokensRevocationRidesAlong(t *testing.T) {
	ts := startM2M(t, "", nil)
	ctx := context.Background()
	got, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret})
	if err != nil {
		t.Fatal(err)
	}
	tok, id := got.AccessToken, verifyWithJWKS(t, ts, got.AccessToken)["jti"].(string)
	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	clients := map[string]func(token string) m2mpbconnect.M2MOAuthServiceClient{
		"connect+json": func(token string) m2mpbconnect.M2MOAuthServiceClient {
			return m2mpbconnect.NewM2MOAuthServiceClient(&http.Client{Transport: bearerTransport(token)}, ts.URL, connect.WithProtoJSON())
		},
		"connect+proto": func(token string) m2mpbconnect.M2MOAuthServiceClient {
			return m2mpbconnect.NewM2MOAuthServiceClient(&http.Client{Transport: bearerTransport(token)}, ts.URL)
		},
		"grpc": func(token string) m2mpbconnect.M2MOAuthServiceClient {
			return m2mpbconnect.NewM2MOAuthServiceClient(&http.Client{Transport: bearerOver{token, h2}}, ts.URL, connect.WithGRPC())
		},
		"grpc-web": func(token string) m2mpbconnect.M2MOAuthServiceClient {
			return m2mpbconnect.NewM2MOAuthServiceClient(&http.Client{Transport: bearerTransport(token)}, ts.URL, connect.WithGRPCWeb())
		},
	}
	list := func(c m2mpbconnect.M2MOAuthServiceClient, req *m2mpb.GetTokensRequest) (int, error) {
		stream, err := c.GetTokens(ctx, connect.NewRequest(req))
		if err != nil {
			return 0, err
		}
		n := 0
		for stream.Receive() {
			n++
		}
		return n, stream.Err()
	}
	byID := &m2mpb.GetTokensRequest{IdFilter: []string{id}}
	for name, c := range clients {
		if n, err := list(c(tok), byID); n != 1 || err != nil {
			t.Fatalf("%s, live token: %d records, %v", name, n, err)
		}
	}
	if _, err := m2mClient(ts, bearer(tok)).DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{id}})); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients {
		for _, req := range []*m2mpb.GetTokensRequest{byID, {IncludeBlacklisted: true}} {
			n, err := list(c(tok), req)
			if n != 0 || connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s, blacklisted token, %v: %d records, %v; want unauthenticated", name, req, n, err)
			}
		}
	}

	// A user's token whose session has been logged out.
	signin, err := protocols["connect+json"](ts.URL).Token(ctx, login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	user := signin.Msg.AccessToken
	if _, err := list(clients["grpc"](user), &m2mpb.GetTokensRequest{}); err != nil {
		t.Fatalf("signed-in user: %v", err)
	}
	if _, err := protocols["connect+json"](ts.URL).Logout(ctx, connect.NewRequest(&authv1.LogoutRequest{RefreshToken: signin.Msg.RefreshToken})); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients {
		if _, err := list(c(user), &m2mpb.GetTokensRequest{IdFilter: []string{id}}); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("%s, logged-out session: %v; want unauthenticated", name, err)
		}
	}
}

// bearerOver sets the bearer token on every request it sends through rt.
type bearerOver struct {
	token string
	rt    http.RoundTripper
}

func (b bearerOver) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}
